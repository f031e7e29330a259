// One sparse SGD step of skip-gram negative sampling, fused into one XLA FFI call.
//
// It reproduces jaxgram's pure step (training.make_step with objective "ns": jax.grad
// of losses.ns_group_loss on the gathered rows, then a scatter-add) without XLA's
// single-threaded scalar gather/scatter. Semantics that must match the pure step:
// - Every gradient is computed from the tables as they were at the START of the step,
//   so phase 1 reads the tables and writes only a scratch of update rows, and phase 2
//   adds those rows in. Repeated ids therefore accumulate, as with scatter-add.
// - Context slot < 0 is empty, a centre with mask 0 is padding: neither reads nor
//   writes a row, and a padding centre's loss is 0.
// - Tied tables (W is E) are the same pointer: phase 2 still sees only snapshot grads.
//
// Threads: `workers` of them split phase 1 by centre and phase 2 by row (see ApplyCentre),
// so the result does not depend on their number.
// Built with plain -O3 (no -march: the wheel must run on any x86-64), so the D-long
// loops are written to vectorise with baseline SIMD: contiguous rows, restrict
// pointers, and dot products split into independent lanes (a single float sum may not
// be reordered without -ffast-math, independent lanes may).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

// Named buffer types: the FFI binding macros cannot take template arguments with commas.
using Table = ffi::Buffer<ffi::F32, 2>;
using TableOut = ffi::ResultBuffer<ffi::F32, 2>;
using Ids1 = ffi::Buffer<ffi::S32, 1>;
using Ids2 = ffi::Buffer<ffi::S32, 2>;
using Floats1 = ffi::Buffer<ffi::F32, 1>;
using Scalar = ffi::Buffer<ffi::F32, 0>;
using LossesOut = ffi::ResultBuffer<ffi::F32, 1>;

namespace {

// Views of one call's operands; tables point at the (aliased) output buffers.
struct Step {
  float* E;
  float* W;  // == E when tied
  int64_t rows_e, rows_w, dim;
  const int32_t* centers;
  const int32_t* contexts;
  const int32_t* negatives;
  const float* mask;
  int64_t batch, window, negative;
  float lr;
  float* losses;
};

// The D-long loops also get an AVX2 copy where the compiler and loader support
// function multi-versioning: the loader picks it on CPUs that have AVX2, every other
// x86-64 CPU runs the baseline copy, so the build still needs no -march.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define JAXGRAM_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JAXGRAM_SIMD_CLONES
#endif

// A dot product keeps kLanes independent partial sums: without -ffast-math the
// compiler may not reorder one float sum, but it does turn independent lanes into
// SIMD registers (one AVX2 or two SSE registers).
constexpr int kLanes = 8;

inline float Dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float acc[kLanes] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return tail + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

inline void Axpy(float a, const float* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y1 += a * x1 and y2 += a * x2 in one pass: the two updates of one score share a, and
// one loop loads the input and output rows once instead of twice.
inline void Axpy2(float a, const float* __restrict x1, float* __restrict y1, const float* __restrict x2,
                  float* __restrict y2, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    y1[i] += a * x1[i];
    y2[i] += a * x2[i];
  }
}

// softplus(x) = max(x, 0) + log(1 + e) and sigmoid(x), from one e = exp(-|x|) in (0, 1],
// so neither overflows for any x (as jax.nn.softplus and jax.nn.sigmoid). The log is
// not taken per score: a centre's loss sums softplus over all its scores, so it keeps
// the sum of the max(x, 0) parts and the product of the (1 + e) factors (each in (1, 2],
// so a thousand of them fit a double; larger windows fold it into a log now and then) and
// takes one log per centre. A log per score
// was a sixth of the whole step in a profile.
struct Logistic {
  float linear;  // max(x, 0)
  float factor;  // 1 + e: softplus(x) = linear + log(factor)
  float sigmoid;
};

inline Logistic Evaluate(float x) {
  const float e = std::exp(-std::fabs(x));
  const float factor = 1.f + e;
  const float inverse = 1.f / factor;
  return {std::max(x, 0.f), factor, x >= 0.f ? inverse : e * inverse};
}

// Scratch reused across calls on the same thread: allocating ~1 MB per step would
// cost page faults every scan iteration. Concurrent calls run on different threads.
std::vector<float>& Scratch(size_t size) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < size) scratch.resize(size);
  return scratch;
}

// Output row of slot k of centre b: the centre itself, then its negatives.
inline int32_t OutputRow(const Step& s, int64_t b, int64_t k) {
  return k == 0 ? s.centers[b] : s.negatives[b * s.negative + k - 1];
}

// Ids outside the tables would read or write foreign memory: refuse the whole step
// before touching anything (XLA's gather would clamp them, its scatter drop them).
ffi::Error CheckIds(const Step& s) {
  for (int64_t b = 0; b < s.batch; ++b) {
    if (s.mask[b] == 0.f) continue;
    for (int64_t k = 0; k <= s.negative; ++k) {
      const int32_t row = OutputRow(s, b, k);
      if (row < 0 || row >= s.rows_w)
        return ffi::Error::InvalidArgument("ns_sgd: output id " + std::to_string(row) + " outside W's " +
                                           std::to_string(s.rows_w) + " rows");
    }
    for (int64_t j = 0; j < s.window; ++j) {
      if (s.contexts[b * s.window + j] >= s.rows_e)
        return ffi::Error::InvalidArgument("ns_sgd: context id " + std::to_string(s.contexts[b * s.window + j]) +
                                           " outside E's " + std::to_string(s.rows_e) + " rows");
    }
  }
  return ffi::Error::Success();
}

// Phase 1 for centre b: its loss, and its update rows (already scaled by -lr) in
// dE [window, dim] (one per context slot) and dW [1 + negative, dim] (one per output).
JAXGRAM_SIMD_CLONES float CentreUpdates(const Step& s, int64_t b, float* __restrict dE, float* __restrict dW) {
  const int64_t D = s.dim, outputs = s.negative + 1;
  std::fill(dW, dW + outputs * D, 0.f);
  float linear = 0.f;
  double product = 1.0, folded = 0.0;  // the loss's log part: folded + log(product)
  for (int64_t j = 0; j < s.window; ++j) {
    const int32_t context = s.contexts[b * s.window + j];
    if (context < 0) continue;
    const float* h = s.E + context * D;
    float* dh = dE + j * D;
    std::fill(dh, dh + D, 0.f);
    for (int64_t k = 0; k < outputs; ++k) {
      const float* w = s.W + int64_t{OutputRow(s, b, k)} * D;
      const float score = Dot(h, w, D);
      // Label 1 for the centre (k = 0): loss softplus(-s), d/ds = sigmoid(s) - 1 = -sigmoid(-s);
      // label 0 for the negatives: softplus(s), d/ds = sigmoid(s).
      const Logistic f = Evaluate(k == 0 ? -score : score);
      linear += f.linear;
      product *= f.factor;
      const float step = -s.lr * s.mask[b] * (k == 0 ? -f.sigmoid : f.sigmoid);
      Axpy2(step, w, dh, h, dW + k * D, D);
      if (product > 1e300) {  // factors are <= 2: fold long before a double overflows
        folded += std::log(product);
        product = 1.0;
      }
    }
  }
  return s.mask[b] * (linear + static_cast<float>(folded + std::log(product)));
}

// Phase 2 for centre b: add its snapshot updates into the rows worker `part` of `parts`
// owns (row % parts == part). Every row is owned by one worker, which adds its updates
// in centre order, as one worker would: the tables come out bitwise the same for any
// number of workers, and no two workers write one row.
JAXGRAM_SIMD_CLONES void ApplyCentre(const Step& s, int64_t b, const float* dE, const float* dW, int part,
                                     int parts) {
  const int64_t D = s.dim;
  for (int64_t j = 0; j < s.window; ++j) {
    const int32_t context = s.contexts[b * s.window + j];
    if (context >= 0 && context % parts == part) Axpy(1.f, dE + j * D, s.E + context * D, D);
  }
  for (int64_t k = 0; k <= s.negative; ++k) {
    const int32_t row = OutputRow(s, b, k);
    if (row % parts == part) Axpy(1.f, dW + k * D, s.W + int64_t{row} * D, D);
  }
}

// work(part) for every part in [0, parts), on the calling thread and on XLA's intra-op
// thread pool. Parts are taken from a shared counter, so the caller never waits for a
// task that has not started: if no pool thread is free it does every part itself (a
// busy pool, or several devices' calls at once, cannot deadlock it).
void Parallel(ffi::ThreadPool& pool, int parts, const std::function<void(int)>& work) {
  struct Progress {
    std::atomic<int> next{0}, done{0};
  };
  auto progress = std::make_shared<Progress>();  // late tasks may still look at it after the caller returns
  auto take_parts = [progress, &work, parts] {
    for (int part; (part = progress->next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      work(part);  // only reached while the caller still waits below, so `work` is alive
      progress->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(parts - 1, pool.num_threads());
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([take_parts] { take_parts(); });
  take_parts();
  while (progress->done.load(std::memory_order_acquire) < parts) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }
}

ffi::Error RunStep(const Step& s, int64_t workers, ffi::ThreadPool& pool) {
  if (ffi::Error error = CheckIds(s); error.failure()) return error;
  const int64_t per_centre = (s.window + s.negative + 1) * s.dim;
  float* scratch = Scratch(static_cast<size_t>(s.batch * per_centre)).data();
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(workers, s.batch)));
  // Phase 1: each worker reads the snapshot for its share of the centres.
  Parallel(pool, parts, [&](int part) {
    for (int64_t b = s.batch * part / parts; b < s.batch * (part + 1) / parts; ++b) {
      s.losses[b] = 0.f;
      if (s.mask[b] == 0.f) continue;
      float* dE = scratch + b * per_centre;
      s.losses[b] = CentreUpdates(s, b, dE, dE + s.window * s.dim);
    }
  });
  // Phase 2: each worker adds every centre's updates to the rows it owns.
  Parallel(pool, parts, [&](int part) {
    for (int64_t b = 0; b < s.batch; ++b) {
      if (s.mask[b] == 0.f) continue;
      const float* dE = scratch + b * per_centre;
      ApplyCentre(s, b, dE, dE + s.window * s.dim, part, parts);
    }
  });
  return ffi::Error::Success();
}

// XLA aliases each table's input and output buffer; should it ever hand us distinct
// buffers (an undonated input it chose not to copy), start the output from the input.
float* StartFrom(const Table& in, TableOut& out) {
  float* data = out->typed_data();
  if (data != in.typed_data()) std::memcpy(data, in.typed_data(), in.size_bytes());
  return data;
}

ffi::Error Describe(Step& s, const Table& E, const Table& W,
                    const Ids1& centers, const Ids2& contexts,
                    const Ids2& negatives, const Floats1& mask,
                    const Scalar& lr, LossesOut& losses) {
  s.rows_e = E.dimensions()[0];
  s.rows_w = W.dimensions()[0];
  s.dim = E.dimensions()[1];
  s.batch = centers.dimensions()[0];
  s.window = contexts.dimensions()[1];
  s.negative = negatives.dimensions()[1];
  if (W.dimensions()[1] != s.dim)
    return ffi::Error::InvalidArgument("ns_sgd: E and W must have the same row length");
  if (contexts.dimensions()[0] != s.batch || negatives.dimensions()[0] != s.batch ||
      mask.dimensions()[0] != s.batch || losses->dimensions()[0] != s.batch)
    return ffi::Error::InvalidArgument("ns_sgd: centers, contexts, negatives, mask and losses need one row per centre");
  s.centers = centers.typed_data();
  s.contexts = contexts.typed_data();
  s.negatives = negatives.typed_data();
  s.mask = mask.typed_data();
  s.lr = lr.typed_data()[0];
  s.losses = losses->typed_data();
  return ffi::Error::Success();
}

ffi::Error NsSgdUntiedImpl(Table E, Table W,
                           Ids1 centers, Ids2 contexts,
                           Ids2 negatives, Floats1 mask,
                           Scalar lr, int64_t workers, ffi::ThreadPool pool, TableOut E_out,
                           TableOut W_out, LossesOut losses) {
  Step s;
  if (ffi::Error error = Describe(s, E, W, centers, contexts, negatives, mask, lr, losses); error.failure())
    return error;
  s.E = StartFrom(E, E_out);
  s.W = StartFrom(W, W_out);
  return RunStep(s, workers, pool);
}

ffi::Error NsSgdTiedImpl(Table E, Ids1 centers,
                         Ids2 contexts, Ids2 negatives,
                         Floats1 mask, Scalar lr, int64_t workers, ffi::ThreadPool pool,
                         TableOut E_out, LossesOut losses) {
  Step s;
  if (ffi::Error error = Describe(s, E, E, centers, contexts, negatives, mask, lr, losses); error.failure())
    return error;
  s.E = s.W = StartFrom(E, E_out);
  return RunStep(s, workers, pool);
}

}  // namespace

// Two handlers rather than one with a `tied` attribute: a tied step has one table to
// alias, an untied step two, and the buffer lists differ accordingly.
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgramNsSgdUntied, NsSgdUntiedImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Table>()  // E
                                  .Arg<Table>()  // W
                                  .Arg<Ids1>()  // centers
                                  .Arg<Ids2>()  // contexts
                                  .Arg<Ids2>()  // negatives
                                  .Arg<Floats1>()  // mask
                                  .Arg<Scalar>()  // lr
                                  .Attr<int64_t>("workers")
                                  .Ctx<ffi::ThreadPool>()
                                  .Ret<Table>()  // E, aliased
                                  .Ret<Table>()  // W, aliased
                                  .Ret<Floats1>());  // losses

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgramNsSgdTied, NsSgdTiedImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Table>()  // E (also W)
                                  .Arg<Ids1>()  // centers
                                  .Arg<Ids2>()  // contexts
                                  .Arg<Ids2>()  // negatives
                                  .Arg<Floats1>()  // mask
                                  .Arg<Scalar>()  // lr
                                  .Attr<int64_t>("workers")
                                  .Ctx<ffi::ThreadPool>()
                                  .Ret<Table>()  // E, aliased
                                  .Ret<Floats1>());  // losses

// The context slots of a block of centres, the host's share of training (data.CentreGroups.block
// in NumPy does the same with a dozen array passes; one pass here keeps a core free for the kernel).
// out[r, c] = ids[rows[r] + offset_c] when that token is in the same sentence and within the
// centre's reach, else -1; offsets are -window..-1, 1..window.
extern "C" void JaxgramContextBlock(const int32_t* ids, const int32_t* sentence_ids, const int32_t* reach,
                                    int64_t tokens, const int32_t* rows, int64_t count, int64_t window,
                                    int32_t* out) {
  for (int64_t r = 0; r < count; ++r) {
    const int64_t centre = rows[r];
    int32_t* slots = out + r * 2 * window;
    for (int64_t c = 0; c < 2 * window; ++c) {
      const int64_t offset = c < window ? c - window : c - window + 1;
      const int64_t position = centre + offset;
      const bool valid = position >= 0 && position < tokens && sentence_ids[position] == sentence_ids[centre] &&
                         reach[centre] >= (offset < 0 ? -offset : offset);
      slots[c] = valid ? ids[position] : -1;
    }
  }
}
