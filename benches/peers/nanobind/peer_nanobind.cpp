// peer_nanobind: the nanobind side of bindery's peer comparison (benches/peers).
//
// Written as a nanobind user would write it: plain C++ types, conversions left to
// nanobind's STL casters, the documented type-slot route for garbage collection.
// The Python API is the one every peer module exposes (benches/peers/README.md).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unordered_map.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace nb = nanobind;

namespace {

struct Counter {
    explicit Counter(int64_t start) : value(start) {}
    int64_t incr() {
        value = static_cast<int64_t>(static_cast<uint64_t>(value) + 1);  // wraps
        return value;
    }
    int64_t value;
};

struct Node {
    nb::object other = nb::none();
};

int node_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));  // instances of heap types own a reference to their type
    Node *node = nb::inst_ptr<Node>(self);
    Py_VISIT(node->other.ptr());
    return 0;
}

int node_clear(PyObject *self) {
    Node *node = nb::inst_ptr<Node>(self);
    node->other = nb::none();
    return 0;
}

PyType_Slot node_slots[] = {
    {Py_tp_traverse, reinterpret_cast<void *>(node_traverse)},
    {Py_tp_clear, reinterpret_cast<void *>(node_clear)},
    {0, nullptr},
};

}  // namespace

NB_MODULE(peer_nanobind, m) {
    m.def("add", [](int32_t a, int32_t b) { return int64_t(a) + int64_t(b); });
    m.def("six", [](uint16_t a, int64_t b, int32_t c, uint64_t d, uint32_t e, float f) {
        return double(a) + double(b) + double(c) + double(d) + double(e) + double(f);
    });
    m.def("sum_list", [](const std::vector<double> &xs) {
        double sum = 0.0;
        for (double x : xs)
            sum += x;
        return sum;
    });
    m.def("make_ints", [](size_t n) {
        std::vector<int64_t> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i)
            out.push_back(int64_t(i));
        return out;
    });
    m.def("make_dict", [](size_t n) {
        std::unordered_map<std::string, int64_t> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i)
            out.emplace("k" + std::to_string(i), int64_t(i));
        return out;
    });

    nb::class_<Counter>(m, "Counter")
        .def(nb::init<int64_t>(), nb::arg("start"))
        .def("incr", &Counter::incr)
        .def_ro("value", &Counter::value);
    m.def("take_ref", [](const Counter &c) { return c.value; });

    nb::class_<Node>(m, "Node", nb::type_slots(node_slots), nb::is_weak_referenceable())
        .def(nb::init<>())
        .def_rw("other", &Node::other);
}
