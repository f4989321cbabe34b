// peer_pybind11: the pybind11 side of bindery's peer comparison (benches/peers).
//
// Written as a pybind11 user would write it: plain C++ types, conversions left to
// pybind11's STL casters (pybind11/stl.h), py::custom_type_setup for garbage collection.
// The Python API is the one every peer module exposes (benches/peers/README.md).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;

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
    py::object other = py::none();
};

int node_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));  // instances of heap types own a reference to their type
    if (!py::detail::is_holder_constructed(self))
        return 0;  // __init__ has not run yet: no C++ object to look into
    auto &node = py::cast<Node &>(py::handle(self));
    Py_VISIT(node.other.ptr());
    return 0;
}

int node_clear(PyObject *self) {
    if (py::detail::is_holder_constructed(self)) {
        auto &node = py::cast<Node &>(py::handle(self));
        node.other = py::none();
    }
    return 0;
}

}  // namespace

PYBIND11_MODULE(peer_pybind11, m) {
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

    py::class_<Counter>(m, "Counter")
        .def(py::init<int64_t>(), py::arg("start"))
        .def("incr", &Counter::incr)
        .def_readonly("value", &Counter::value);
    m.def("take_ref", [](const Counter &c) { return c.value; });

    // pybind11 instances are weak-referenceable by default.
    py::class_<Node>(m, "Node", py::custom_type_setup([](PyHeapTypeObject *heap_type) {
                         PyTypeObject *type = &heap_type->ht_type;
                         type->tp_flags |= Py_TPFLAGS_HAVE_GC;
                         type->tp_traverse = node_traverse;
                         type->tp_clear = node_clear;
                     }))
        .def(py::init<>())
        .def_readwrite("other", &Node::other);
}
