"""A small ONNX graph builder: values that know their element type, arithmetic operators that
add nodes, constants, sub-graphs for Loop bodies, and splicing of exported models (the three
networks) into the graph being built.

Only what the cascade graph needs; every node is a standard ONNX operator (``ai.onnx``
domain), so any ONNX runtime runs the result.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..export import _import_onnx

# Element types (onnx.TensorProto values), kept here so the module imports without onnx.
FLOAT, UINT8, INT64, BOOL, DOUBLE = 1, 2, 7, 9, 11
_NUMPY = {FLOAT: np.float32, UINT8: np.uint8, INT64: np.int64, BOOL: np.bool_, DOUBLE: np.float64}
_FROM_NUMPY = {np.dtype(v): k for k, v in _NUMPY.items()}
_BOOL_OPS = {"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "And", "Or", "Not", "Xor", "IsNaN"}
_INT64_OPS = {"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "NonMaxSuppression"}


class V:
    """A value of the graph: its name and element type; operators add nodes to its graph.

    ``a + b``, ``a - 1``, ``2 * a``, ``a / b``, ``-a``, ``a < b``... (a Python number or numpy
    array becomes a constant of ``a``'s type); ``a & b``, ``a | b``, ``~a`` on booleans.
    """

    __slots__ = ("g", "name", "dtype")

    def __init__(self, g: Graph, name: str, dtype: int) -> None:
        self.g, self.name, self.dtype = g, name, dtype

    def __repr__(self) -> str:
        return f"V({self.name!r}, {self.dtype})"

    def _bin(self, op: str, other: Any, swap: bool = False) -> V:
        o = self.g.lift(other, self.dtype)
        return self.g.op(op, o, self) if swap else self.g.op(op, self, o)

    def __add__(self, o: Any) -> V: return self._bin("Add", o)
    def __radd__(self, o: Any) -> V: return self._bin("Add", o, True)
    def __sub__(self, o: Any) -> V: return self._bin("Sub", o)
    def __rsub__(self, o: Any) -> V: return self._bin("Sub", o, True)
    def __mul__(self, o: Any) -> V: return self._bin("Mul", o)
    def __rmul__(self, o: Any) -> V: return self._bin("Mul", o, True)
    def __truediv__(self, o: Any) -> V: return self._bin("Div", o)
    def __rtruediv__(self, o: Any) -> V: return self._bin("Div", o, True)
    def __neg__(self) -> V: return self.g.op("Neg", self)
    def __lt__(self, o: Any) -> V: return self._bin("Less", o)
    def __le__(self, o: Any) -> V: return self._bin("LessOrEqual", o)
    def __gt__(self, o: Any) -> V: return self._bin("Greater", o)
    def __ge__(self, o: Any) -> V: return self._bin("GreaterOrEqual", o)
    def __and__(self, o: V) -> V: return self.g.op("And", self, o)
    def __or__(self, o: V) -> V: return self.g.op("Or", self, o)
    def __invert__(self) -> V: return self.g.op("Not", self)


class Graph:
    """Nodes, initializers, inputs and outputs of one ONNX graph (the main graph or a Loop
    body, which shares its parent's names and constants)."""

    def __init__(self, name: str = "graph", parent: Graph | None = None) -> None:
        self.name = name
        self.parent = parent
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.initializers: list[Any] = []
        self._counter: itertools.count[int] = parent._counter if parent else itertools.count()
        self._consts: dict[tuple[int, bytes, tuple[int, ...]], V] = {} if parent is None else parent._consts
        self._root: Graph = parent._root if parent else self
        self._spliced: set[str] = set() if parent is None else parent._spliced
        self.scope = ""  # prefix of the nodes' names (which step they belong to, in profiles)
        self._active: Graph = self  # of the root: the graph new nodes go to (see ``building``)

    # --- names, constants, inputs ---------------------------------------------------------

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self._counter)}"

    def const(self, value: Any, dtype: int | None = None) -> V:
        """A constant (an initializer of the main graph, shared by equal values)."""
        onnx = _import_onnx()
        arr = np.asarray(value, dtype=_NUMPY[dtype] if dtype is not None else None)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(np.float64)
        dtype = _FROM_NUMPY[arr.dtype]
        key = (dtype, arr.tobytes(), arr.shape)
        if key not in self._consts:
            name = self._root.fresh("c")
            self._root.initializers.append(onnx.numpy_helper.from_array(arr, name))
            self._consts[key] = V(self._root, name, dtype)
        return V(self, self._consts[key].name, dtype)

    def lift(self, x: Any, dtype: int) -> V:
        """x as a value: a V stays, a number or array becomes a constant of ``dtype``."""
        return x if isinstance(x, V) else self.const(x, dtype)

    def input(self, name: str, dtype: int, shape: Sequence[int | str | None]) -> V:
        """A graph input (shape: sizes or names of dimensions)."""
        onnx = _import_onnx()
        self.inputs.append(onnx.helper.make_tensor_value_info(name, dtype, list(shape)))
        return V(self, name, dtype)

    def output(self, v: V, name: str, shape: Sequence[int | str | None]) -> None:
        """Make ``v`` an output of this graph called ``name`` (shape: sizes or names of
        dimensions)."""
        onnx = _import_onnx()
        self.nodes.append(onnx.helper.make_node("Identity", [v.name], [name]))
        self.outputs.append(onnx.helper.make_tensor_value_info(name, v.dtype, list(shape)))

    # --- nodes ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def building(self, body: Graph) -> Iterator[Graph]:
        """New nodes go to ``body`` (a sub-graph) inside the block, whichever graph's values or
        methods make them: a branch uses the outer graph's values freely."""
        root = self._root
        before, root._active = root._active, body
        try:
            yield body
        finally:
            root._active = before

    def op(self, op_type: str, *inputs: V | None, n_out: int = 1, dtypes: Sequence[int] | None = None,
           **attrs: Any) -> Any:
        """Add a node (to the graph being built, see ``building``) -> its output V (or a list
        of them when n_out > 1). Output types: bool for comparisons, int64 for shapes and
        indices, ``to`` for Cast, else the first input's type (``dtypes`` overrides)."""
        onnx = _import_onnx()
        target = self._root._active
        names = [self.fresh(op_type.lower()) for _ in range(n_out)]
        target.nodes.append(onnx.helper.make_node(op_type, [i.name if i is not None else "" for i in inputs],
                                                  names, name=target.scope + names[0], **attrs))
        if dtypes is None:
            if op_type in _BOOL_OPS:
                dtypes = [BOOL] * n_out
            elif op_type in _INT64_OPS:
                dtypes = [INT64] * n_out
            elif op_type == "Cast":
                dtypes = [attrs["to"]]
            else:
                first = next(i for i in inputs if i is not None)
                dtypes = [first.dtype] * n_out
        out = [V(target, n, t) for n, t in zip(names, dtypes)]
        return out[0] if n_out == 1 else out

    def cast(self, v: V, dtype: int) -> V:
        return v if v.dtype == dtype else self.op("Cast", v, to=dtype)

    def ints(self, values: Sequence[int]) -> V:
        return self.const(np.asarray(values, np.int64))

    def unsqueeze(self, v: V, axes: Sequence[int]) -> V:
        return self.op("Unsqueeze", v, self.ints(axes))

    def squeeze(self, v: V, axes: Sequence[int]) -> V:
        return self.op("Squeeze", v, self.ints(axes))

    def slice(self, v: V, starts: Sequence[int] | V, ends: Sequence[int] | V, axes: Sequence[int]) -> V:
        s = starts if isinstance(starts, V) else self.ints(starts)
        e = ends if isinstance(ends, V) else self.ints(ends)
        return self.op("Slice", v, s, e, self.ints(axes))

    def take(self, v: V, index: int, axis: int) -> V:
        """v's entry ``index`` along ``axis``, that axis removed."""
        return self.op("Gather", v, self.const(np.int64(index)), axis=axis)

    def concat(self, values: Sequence[V], axis: int) -> V:
        return self.op("Concat", *values, axis=axis)

    def stack(self, values: Sequence[V], axis: int) -> V:
        return self.concat([self.unsqueeze(v, [axis]) for v in values], axis)

    def minimum(self, *values: V) -> V:
        return self.op("Min", *values)

    def maximum(self, *values: V) -> V:
        return self.op("Max", *values)

    def where(self, cond: V, a: Any, b: Any) -> V:
        dtype = a.dtype if isinstance(a, V) else b.dtype
        return self.op("Where", cond, self.lift(a, dtype), self.lift(b, dtype), dtypes=[dtype])

    def floor(self, v: V) -> V:
        return self.op("Floor", v)

    def trunc(self, v: V) -> V:
        """Rounding toward zero (ONNX has no Trunc)."""
        return self.where(v < 0, self.op("Ceil", v), self.op("Floor", v))

    def arange(self, n: V, dtype: int = INT64) -> V:
        """0, 1, ..., n - 1 (n: int64 scalar)."""
        r = self.op("Range", self.const(np.int64(0)), n, self.const(np.int64(1)))
        return self.cast(r, dtype)

    def select(self, v: V, index: V, axis: int = 0) -> V:
        return self.op("Gather", v, index, axis=axis)

    def nonzero(self, mask: V) -> V:
        """Indices of the true entries of a 1-D mask -> int64 [K]."""
        return self.squeeze(self.op("NonZero", mask), [0])

    # --- sub-graphs and spliced models ----------------------------------------------------

    def body(self, name: str) -> Graph:
        """A sub-graph (a Loop or If body) that may use this graph's values."""
        return Graph(name, parent=self)

    def proto(self) -> Any:
        onnx = _import_onnx()
        return onnx.helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)

    def splice(self, model: Any, inputs: dict[str, V], prefix: str, shared: str) -> dict[str, V]:
        """Insert the nodes of ``model`` (an onnx.ModelProto with one graph and no sub-graphs)
        feeding its graph inputs from ``inputs``; its initializers are added once, under
        ``shared`` (so a network spliced several times keeps one copy of its weights).
        Returns its graph outputs by name."""
        onnx = _import_onnx()
        graph = model.graph
        weights = {t.name for t in graph.initializer}
        if shared not in self._root._spliced:
            for t in graph.initializer:
                copy = onnx.TensorProto()
                copy.CopyFrom(t)
                copy.name = shared + t.name
                self._root.initializers.append(copy)
            self._root._spliced.add(shared)
        fed = {name: v.name for name, v in inputs.items()}
        missing = [i.name for i in graph.input if i.name not in weights and i.name not in fed]
        if missing:
            raise ValueError(f"splice of {shared}: no value for inputs {missing}")

        def rename(name: str) -> str:
            if not name:
                return name
            if name in fed:
                return fed[name]
            return shared + name if name in weights else prefix + name

        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + node.name if node.name else ""
            copy.input[:] = [rename(i) for i in node.input]
            copy.output[:] = [rename(o) for o in node.output]
            self._root._active.nodes.append(copy)
        return {o.name: V(self, rename(o.name), o.type.tensor_type.elem_type) for o in graph.output}
