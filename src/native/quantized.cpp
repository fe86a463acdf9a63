// libtorch's quantised (int8) operators, reached through the dispatcher for normiqa's int8
// inference path (src/model/backbone/quantized.rs). tch binds only the `aten::` functions;
// `quantized::conv2d_prepack`, `quantized::conv2d(_relu)` and `quantized::add` live in the
// `quantized::` namespace of the same libtorch_cpu, so this file calls them by schema name,
// boxed (no private header of ATen's quantised kernels is needed).
//
// Tensors cross as `at::Tensor*` (tch's C_tensor); a new tensor is returned on the heap for
// tch to own (Tensor::from_ptr). Packed weights are an IValue on the heap (nq_packed_free).
// Every entry point catches C++ exceptions and writes the message into `err` (NUL-terminated,
// at most `errlen` bytes), returning null: an exception must not unwind into Rust.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <cstring>
#include <string>

namespace {

c10::OperatorHandle op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

void set_error(char* err, size_t errlen, const char* what) {
  if (err == nullptr || errlen == 0) return;
  std::strncpy(err, what, errlen - 1);
  err[errlen - 1] = '\0';
}

template <typename F>
auto guarded(char* err, size_t errlen, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    set_error(err, errlen, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(err, errlen, e.what());
  } catch (...) {
    set_error(err, errlen, "unknown C++ exception");
  }
  return nullptr;
}

}  // namespace

extern "C" {

// Packs per-channel quantised weights `qweight` (qint8) and an fp32 `bias` (may be null) for a
// 2-D convolution of square `stride` and symmetric `padding`, `groups` groups.
void* nq_conv2d_prepack(const at::Tensor* qweight, const at::Tensor* bias, int64_t stride,
                        int64_t padding, int64_t groups, char* err, size_t errlen) {
  return guarded(err, errlen, [&]() -> void* {
    std::optional<at::Tensor> b;
    if (bias != nullptr) b = *bias;
    std::vector<c10::IValue> stack{*qweight, b, c10::List<int64_t>({stride, stride}),
                                   c10::List<int64_t>({padding, padding}),
                                   c10::List<int64_t>({1, 1}), groups};
    op("quantized::conv2d_prepack", "").callBoxed(&stack);
    return new c10::IValue(std::move(stack.at(0)));
  });
}

void nq_packed_free(void* packed) { delete static_cast<c10::IValue*>(packed); }

// The quantised convolution of `qx` (quint8) with `packed`, its output quantised with
// (`scale`, `zero_point`); `relu`: ReLU fused (with an output range of [0, 6] that is ReLU6).
at::Tensor* nq_conv2d(const at::Tensor* qx, const void* packed, double scale, int64_t zero_point,
                      int relu, char* err, size_t errlen) {
  return guarded(err, errlen, [&]() -> at::Tensor* {
    std::vector<c10::IValue> stack{*qx, *static_cast<const c10::IValue*>(packed), scale,
                                   zero_point};
    op(relu ? "quantized::conv2d_relu" : "quantized::conv2d", "new").callBoxed(&stack);
    return new at::Tensor(stack.at(0).toTensor());
  });
}

// `qa + qb` (both quint8), quantised with (`scale`, `zero_point`).
at::Tensor* nq_add(const at::Tensor* qa, const at::Tensor* qb, double scale, int64_t zero_point,
                   char* err, size_t errlen) {
  return guarded(err, errlen, [&]() -> at::Tensor* {
    std::vector<c10::IValue> stack{*qa, *qb, scale, zero_point};
    op("quantized::add", "").callBoxed(&stack);
    return new at::Tensor(stack.at(0).toTensor());
  });
}

// `qx` (quint8, per-tensor) padded by (left, right, top, bottom) with its zero point (real 0),
// in one pass over its bytes: a quantised tensor of the padded size in `qx`'s memory format,
// filled through plain uint8 views of both (libtorch's own pad of quantised tensors, and
// int_repr + pad + re-wrap, each cost several passes: measured, session 11).
at::Tensor* nq_pad(const at::Tensor* qx, int64_t left, int64_t right, int64_t top, int64_t bottom,
                   char* err, size_t errlen) {
  return guarded(err, errlen, [&]() -> at::Tensor* {
    const at::Tensor& x = *qx;
    auto sizes = x.sizes().vec();
    sizes[2] += top + bottom;
    sizes[3] += left + right;
    auto format = x.suggest_memory_format();
    auto out = at::_empty_affine_quantized(sizes, x.options(), x.q_scale(), x.q_zero_point(),
                                           format);
    auto bytes = [](const at::Tensor& q) {
      return at::from_blob(q.data_ptr(), q.sizes(), q.strides(), at::TensorOptions().dtype(at::kByte));
    };
    auto o = bytes(out);
    o.fill_(x.q_zero_point());
    o.narrow(2, top, x.size(2)).narrow(3, left, x.size(3)).copy_(bytes(x));
    return new at::Tensor(out);
  });
}

// Selects libtorch's quantised engine: 1 FBGEMM, 3 oneDNN, 4 x86 (at::QEngine's values).
// Returns 0, or -1 with the reason in `err` (an engine this libtorch was built without).
int nq_set_qengine(int engine, char* err, size_t errlen) {
  try {
    at::globalContext().setQEngine(static_cast<at::QEngine>(engine));
    return 0;
  } catch (const c10::Error& e) {
    set_error(err, errlen, e.what_without_backtrace());
    return -1;
  } catch (const std::exception& e) {
    set_error(err, errlen, e.what());
    return -1;
  }
}

}  // extern "C"
