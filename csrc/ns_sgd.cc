// One SGD step of skip-gram negative sampling as word2vec.c and gensim take it, fused into
// one XLA FFI call.
//
// The update is word2vec's: pairs in corpus order, each (context, centre) pair one SGD step
// on -log σ(e_context · w_centre) - Σ_k log σ(-e_context · w_negative_k) with its own K
// negatives drawn from the noise table; within a pair the output rows are updated one by one
// (each score from the output row as it is then, the input row as it was when the pair
// started) and the input row last. This is gensim's w2v_fast_sentence_sg_neg without its
// sigmoid lookup table, its two skips included (a negative drawn equal to the pair's target
// neither trains nor counts; a score with |s| >= 6 counts in the loss but takes no update);
// jaxgram.step says how it differs from the batched XLA step.
// - Streams: centre b belongs to stream b % streams (the trainer interleaves that many
//   contiguous shares of the corpus, one per worker). Each stream is trained in order, on
//   the tables themselves: with one thread the streams take turns and a step is a
//   deterministic function of its operands; with several, each thread trains its streams
//   at the same time as the others, and a row two of them touch gets their updates in
//   whatever order the threads reach it, as gensim's and word2vec.c's threads do
//   ("Hogwild", Recht et al. 2011); except the frequent words' rows, which each thread trains
//   its own copy of for the step and the step adds up when it ends (PartRows says why).
//   Their draws do not depend on the threads.
// - Negatives: stream s draws them with SplitMix64 seeded from (seed, s), each the noise
//   table's entry at the top log2(size) bits of a draw; one draw per negative of a present
//   pair. All draws are made before any row changes, so a bad noise id fails the call cleanly.
// - Context slot < 0 is empty, a centre with mask 0 is padding: neither reads nor writes a
//   row, and a padding centre's loss is 0. A mask weight m scales the centre's step size.
// - Tied tables (W is E) are the same pointer.
//
// Built with plain -O3 (no -march: the wheel must run on any x86-64), so the D-long
// loops are written to vectorise with baseline SIMD: contiguous rows, restrict
// pointers, and dot products split into independent lanes (a single float sum may not
// be reordered without -ffast-math, independent lanes may).

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <cxxabi.h>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
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
using Seed = ffi::Buffer<ffi::U32, 1>;
using Scalar = ffi::Buffer<ffi::F32, 0>;
using LossesOut = ffi::ResultBuffer<ffi::F32, 1>;
using Threads1 = ffi::Buffer<ffi::S32, 1>;
using ThreadsOut = ffi::ResultBuffer<ffi::S32, 1>;

namespace {

// Views of one call's operands; tables point at the (aliased) output buffers.
struct Step {
  float* E;
  float* W;  // == E when tied
  bool tied;
  int64_t rows_e, rows_w, dim;
  const int32_t* centers;
  const int32_t* contexts;
  const int32_t* noise;  // the noise table: word ids in proportion to count^ns_exponent
  int noise_bits;        // log2 of its (power-of-two) size
  const float* mask;
  int64_t batch, window, negative, streams;
  uint64_t seed;
  float lr;
  float* losses;
};

// The D-long loops also get an AVX2 copy where the compiler and loader support function
// multi-versioning: the loader picks it on CPUs that have AVX2, every other x86-64 CPU runs
// the baseline copy, so the build still needs no -march. (An x86-64-v3 copy, AVX2 with FMA,
// measured 5% faster at D = 100 and 15% slower at D = 300 on the project's Xeon: not kept.)
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define JAXGRAM_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JAXGRAM_SIMD_CLONES
#endif

// A dot product keeps kLanes independent partial sums: without -ffast-math the
// compiler may not reorder one float sum, but it does turn independent lanes into
// SIMD registers (one AVX2 or two SSE registers). (Sixteen lanes, two AVX2 chains,
// measured slower in the training loop.)
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

// softplus(x) = max(x, 0) + log(1 + e) and sigmoid(x), from one e = exp(-|x|) in (0, 1],
// so neither overflows for any x (as jax.nn.softplus and jax.nn.sigmoid). The log of the
// factor is left to LossSum: a log per score was a sixth of the whole step in a profile.
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

// y += a * x and x += a * z in one pass over the row x: a score's change to the input row
// (from the output row as it is before this score's own update) and its change to the
// output row (from the input row as the pair found it).
inline void Exchange(float a, float* __restrict x, float* __restrict y, const float* __restrict z, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    y[i] += a * x[i];
    x[i] += a * z[i];
  }
}

// A centre's loss, the sum of softplus over its scores: the max(x, 0) parts are summed and
// the (1 + e) factors multiplied (each in (1, 2], so a thousand of them fit a double; larger
// windows fold the product into a log now and then), so a centre takes one log, not one per score.
struct LossSum {
  float linear = 0.f;
  double product = 1.0, folded = 0.0;
  void Add(const Logistic& f) {
    linear += f.linear;
    product *= f.factor;
    if (product > 1e300) {
      folded += std::log(product);
      product = 1.0;
    }
  }
  float Total() const { return linear + static_cast<float>(folded + std::log(product)); }
};

// SplitMix64 (Steele, Lea and Flood 2014): 64 random bits from a counter and a bit mixer.
// A stream's generator starts from a mix of (seed, stream), so streams draw independently
// and a step's negatives are a function of its seed alone.
struct SplitMix64 {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

SplitMix64 StreamGenerator(uint64_t seed, int64_t stream) {
  SplitMix64 mixer{seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(stream + 1))};
  return SplitMix64{mixer.Next()};
}

// Ids outside the tables would read or write foreign memory: refuse the whole step
// before touching anything (XLA's gather would clamp them, its scatter drop them).
ffi::Error CheckIds(const Step& s) {
  for (int64_t b = 0; b < s.batch; ++b) {
    if (s.mask[b] == 0.f) continue;
    if (s.centers[b] < 0 || s.centers[b] >= s.rows_w)
      return ffi::Error::InvalidArgument("ns_sgd: centre id " + std::to_string(s.centers[b]) + " outside W's " +
                                         std::to_string(s.rows_w) + " rows");
    for (int64_t j = 0; j < s.window; ++j) {
      if (s.contexts[b * s.window + j] >= s.rows_e)
        return ffi::Error::InvalidArgument("ns_sgd: context id " + std::to_string(s.contexts[b * s.window + j]) +
                                           " outside E's " + std::to_string(s.rows_e) + " rows");
    }
  }
  return ffi::Error::Success();
}

// Asks the cache for the `bytes` at `address` ahead of their use (a hint; never faults).
inline void Prefetch(const void* address, int64_t bytes) {
  for (int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(static_cast<const char*>(address) + offset);
}

// work(b) for the centres of stream `stream` that train (mask not 0), in order.
template <typename Work>
void ForCentres(const Step& s, int64_t stream, Work&& work) {
  for (int64_t b = stream; b < s.batch; b += s.streams)
    if (s.mask[b] != 0.f) work(b);
}

inline int64_t PresentPairs(const Step& s, int64_t b) {
  int64_t pairs = 0;
  for (int64_t j = 0; j < s.window; ++j) pairs += s.contexts[b * s.window + j] >= 0;
  return pairs;
}

// The negatives of every present pair of the stream, K per pair in pair order. A centre's
// draws are all made before its noise table entries are read, so that those (the table is
// megabytes) come from memory together rather than one cache miss after another. At an id
// outside W, sets `bad_id`.
void DrawNegatives(const Step& s, int64_t stream, int32_t* negatives, int64_t& bad_id) {
  SplitMix64 random = StreamGenerator(s.seed, stream);
  int32_t* next = negatives;
  ForCentres(s, stream, [&](int64_t b) {
    const int64_t count = PresentPairs(s, b) * s.negative;
    // The buffer first holds each draw's table slot, unsigned: a table of 2^32 entries (32 noise
    // bits) has slots an int32 cannot hold.
    uint32_t* slots = reinterpret_cast<uint32_t*>(next);
    for (int64_t i = 0; i < count; ++i) {
      const uint64_t bits = random.Next();
      slots[i] = s.noise_bits == 0 ? 0u : static_cast<uint32_t>(bits >> (64 - s.noise_bits));
      Prefetch(s.noise + slots[i], sizeof(int32_t));
    }
    for (int64_t i = 0; i < count; ++i) {
      next[i] = s.noise[slots[i]];
      if ((next[i] < 0 || next[i] >= s.rows_w) && bad_id < 0) bad_id = next[i];
    }
    next += count;
  });
}

// A part's view of the tables for one step. With several threads, rows that the threads of a
// step would all write (the frequent words' rows, which each pair's negatives keep hitting) pass
// between the cores' caches at every write: measured on 2 cores, each thread then trained half
// the pairs in the time one thread trained them all. So each part trains its own copy of the
// `hot` rows with the lowest ids (jaxgram's vocabulary puts the most frequent words first), made
// when it first touches one in the step, and MergeCopies adds the parts' changes into the
// tables when the step ends; every other row is trained in place. A hot row one part touches
// ends the step bitwise as if trained in place; one several parts touch gets each part's
// change, every one computed from the row as the step found it: a part sees the others' changes
// only from the next step on (unlike racing threads, which see each other's writes within
// moments). How many such stale changes a row may take is jaxgram.staleness's bound, which
// narrows the step as threads grow. With one thread there are no copies (hot = 0).
struct PartRows {
  float* E;
  float* W;
  int64_t dim, hot;
  float* e_copies;  // hot x dim: this part's copies of E's hot rows (tied: of the one table)
  float* w_copies;  // of W's; == e_copies when tied
  uint32_t* e_live;  // hot: == now where this part's copy of the row is live this step
  uint32_t* w_live;
  uint32_t now;

  float* Row(float* table, float* copies, uint32_t* live, int64_t id) const {
    if (id >= hot) return table + id * dim;
    float* copy = copies + id * dim;
    if (live[id] != now) {
      std::memcpy(copy, table + id * dim, dim * sizeof(float));
      live[id] = now;
    }
    return copy;
  }
  float* InputRow(int64_t id) const { return Row(E, e_copies, e_live, id); }
  float* OutputRow(int64_t id) const { return Row(W, w_copies, w_live, id); }
};

// gensim's MAX_EXP: a score at or past it in magnitude takes no update (w2v_fast_sentence_sg_neg's
// `continue`), right or wrong; word2vec.c clips the gradient there instead.
constexpr float kSaturatedScore = 6.f;

// Centre b's pairs, one SGD step each, with its negatives; returns the centre's loss.
// `start` and `change` are D floats of scratch.
JAXGRAM_SIMD_CLONES float TrainCentre(const Step& s, const PartRows& rows, int64_t b, const int32_t* negatives,
                                      float* start, float* __restrict change) {
  const int64_t D = s.dim;
  const float lr = s.lr * s.mask[b];
  LossSum loss;
  for (int64_t j = 0; j < s.window; ++j) {
    const int32_t context = s.contexts[b * s.window + j];
    if (context < 0) continue;
    float* h = rows.InputRow(context);
    // The input row as the pair found it. Untied, h is in E and no update of the pair's
    // outputs (in W) reaches it before the pair ends; tied, one may be h itself.
    const float* input = h;
    if (s.tied) input = static_cast<const float*>(std::memcpy(start, h, D * sizeof(float)));
    std::fill(change, change + D, 0.f);
    for (int64_t k = 0; k <= s.negative; ++k) {
      const int32_t output = k == 0 ? s.centers[b] : *negatives++;
      if (k > 0 && output == s.centers[b]) continue;  // gensim skips a negative that is the pair's target
      float* w = rows.OutputRow(output);
      const float score = Dot(input, w, D);
      // Label 1 for the centre (k = 0): loss softplus(-s), d/ds = -sigmoid(-s);
      // label 0 for the negatives: softplus(s), d/ds = sigmoid(s).
      const Logistic f = Evaluate(k == 0 ? -score : score);
      loss.Add(f);
      // gensim leaves a score alone once |s| >= 6 (its sigmoid table's range); the loss still counts it.
      if (std::fabs(score) < kSaturatedScore) Exchange(-lr * (k == 0 ? -f.sigmoid : f.sigmoid), w, change, input, D);
    }
    Axpy(1.f, change, h, D);
  }
  return s.mask[b] * loss.Total();
}

// Every centre of the stream, in order; the rows of a centre's negatives that are trained in
// place are fetched from memory while it trains its first pairs. Each centre's loss goes to
// `losses` (the stream's, in order: the threads' streams interleave in s.losses, where writing
// them one by one would pass its cache lines between the cores). Returns how many centres it trained.
int64_t TrainStream(const Step& s, const PartRows& rows, int64_t stream, const int32_t* negatives, float* scratch,
                    float* losses) {
  const int64_t centres = (s.batch - stream + s.streams - 1) / s.streams;  // b = stream, stream + streams, ...
  std::fill(losses, losses + centres, 0.f);  // a padding centre's loss is 0
  int64_t trained = 0;
  ForCentres(s, stream, [&](int64_t b) {
    const int64_t count = PresentPairs(s, b) * s.negative;
    for (int64_t i = 0; i < count; ++i)
      if (negatives[i] >= rows.hot) Prefetch(s.W + int64_t{negatives[i]} * s.dim, s.dim * sizeof(float));
    losses[(b - stream) / s.streams] = TrainCentre(s, rows, b, negatives, scratch, scratch + s.dim);
    negatives += count;
    ++trained;
  });
  for (int64_t i = 0; i < centres; ++i) s.losses[stream + i * s.streams] = losses[i];
  return trained;
}

// Rows [begin, end) of E (output false) or W (output true) after a step: each row that some
// part's copy of is live gets the first such part's copy, plus each other's change from the row
// (which no part wrote while they trained). parts[p] is part p's view of the step.
void MergeCopies(const std::vector<PartRows>& parts, bool output, int64_t begin, int64_t end) {
  std::vector<const float*> copies;
  std::vector<const uint32_t*> live;
  for (const PartRows& rows : parts) {
    copies.push_back(output ? rows.w_copies : rows.e_copies);
    live.push_back(output ? rows.w_live : rows.e_live);
  }
  const int64_t dim = parts[0].dim;
  const uint32_t now = parts[0].now;
  for (int64_t r = begin; r < end; ++r) {
    size_t first = 0;
    while (first < parts.size() && live[first][r] != now) ++first;
    if (first == parts.size()) continue;
    float* row = (output ? parts[0].W : parts[0].E) + r * dim;
    const float* mine = copies[first] + r * dim;
    for (int64_t i = 0; i < dim; ++i) {
      float value = mine[i];
      for (size_t p = first + 1; p < parts.size(); ++p)
        if (live[p][r] == now) value += copies[p][r * dim + i] - row[i];
      row[i] = value;
    }
  }
}

// Pause instructions the caller spins through before it sleeps: tens of microseconds.
constexpr int kSpinsBeforeSleep = 4000;

// work(part) for every part in [0, parts), on the calling thread and on XLA's intra-op
// thread pool; returns "" or what the first failing part threw. Parts are taken from a
// shared counter, so the caller never waits for a task that has not started: if no pool
// thread is free it does every part itself (a busy pool, or several devices' calls at
// once, cannot deadlock it). A part that throws ends that part only: the exception never
// leaves a pool thread (where it would end the process), the caller returns its message.
// While the last parts finish the caller spins briefly (a part usually ends within
// microseconds of another), then sleeps: on two cores the host's input thread needs the
// core a caller spinning through a long wait would hold.
std::string Parallel(ffi::ThreadPool& pool, int parts, const std::function<void(int)>& work) {
  struct Progress {
    std::atomic<int> next{0}, done{0};
    std::mutex mutex;  // guards error, and pairs the last part's notify with the caller's wait
    std::condition_variable finished;
    std::string error;
  };
  auto progress = std::make_shared<Progress>();  // late tasks may still look at it after the caller returns
  auto take_parts = [progress, &work, parts] {
    for (int part; (part = progress->next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      std::string error;
      try {
        work(part);  // only reached while the caller still waits below, so `work` is alive
      } catch (abi::__forced_unwind&) {
        throw;  // a thread being cancelled must unwind on (glibc aborts the process otherwise)
      } catch (const std::exception& exception) {
        error = exception.what()[0] ? exception.what() : "an exception without a message";
      } catch (...) {
        error = "an exception that is not a std::exception";
      }
      std::lock_guard<std::mutex> lock(progress->mutex);
      if (progress->error.empty()) progress->error = error;
      if (progress->done.fetch_add(1, std::memory_order_release) + 1 == parts) progress->finished.notify_all();
    }
  };
  const int64_t helpers = std::min<int64_t>(parts - 1, pool.num_threads());
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([take_parts] { take_parts(); });
  take_parts();
  for (int spin = 0; spin < kSpinsBeforeSleep && progress->done.load(std::memory_order_acquire) < parts; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }
  std::unique_lock<std::mutex> lock(progress->mutex);
  progress->finished.wait(lock, [&] { return progress->done.load(std::memory_order_acquire) == parts; });
  return progress->error;
}

// Which threads trained the last step's streams, and how many centres each: what
// JaxgramLastStepThreads reports (tests, diagnostics). The last call to finish writes it.
struct ThreadWork {
  std::mutex mutex;
  std::vector<std::thread::id> threads;
  std::vector<int64_t> centres;
};
ThreadWork& LastStepWork() {
  static ThreadWork* work = new ThreadWork;  // never destroyed: a late reader at exit finds it alive
  return *work;
}

void RecordThreadWork(const std::vector<std::thread::id>& part_threads, const std::vector<int64_t>& part_centres) {
  ThreadWork& record = LastStepWork();
  std::lock_guard<std::mutex> lock(record.mutex);
  record.threads.clear();
  record.centres.clear();
  for (size_t part = 0; part < part_threads.size(); ++part) {
    const auto found = std::find(record.threads.begin(), record.threads.end(), part_threads[part]);
    if (found == record.threads.end()) {
      record.threads.push_back(part_threads[part]);
      record.centres.push_back(part_centres[part]);
    } else {
      record.centres[found - record.threads.begin()] += part_centres[part];
    }
  }
}

// Floats of each table a part keeps copies of hot rows in (PartRows): 512 KiB, so that a part's
// copies of E's and W's rows stay within a core's L2 cache (1,310 rows at D = 100).
constexpr int64_t kCopyFloats = int64_t{1} << 17;

// Every buffer the workers use, allocated by the calling thread before any of them starts
// (an allocation that fails is an error returned to the caller, never an exception on a
// pool thread). They are kept from call to call by the thread that calls (one per concurrent
// caller) and only ever grow, so a run allocates them once: each stream's negatives, each
// part's two rows of scratch and its centres' losses, and each part's copies of hot rows.
struct Buffers {
  std::vector<int32_t> negatives;  // stream s's at s * per_stream
  size_t per_stream = 0;
  std::vector<float> scratch;      // part p's at p * part_scratch: 2·D floats, then its centres' losses
  size_t part_scratch = 0;
  std::vector<int64_t> bad_ids;
  std::vector<std::thread::id> part_threads;
  std::vector<int64_t> part_centres;
  std::vector<std::vector<float>> e_copies, w_copies;  // per part: hot x D (w_ ones unused when tied)
  std::vector<std::vector<uint32_t>> e_live, w_live;   // per part: hot
  uint32_t now = 0;  // this call's mark in the live arrays
};

template <typename T>
void GrowTo(std::vector<T>& buffer, size_t size) {
  if (buffer.size() < size) buffer.resize(size);
}

ffi::Error Allocate(const Step& s, int64_t streams, int threads, int64_t hot, Buffers& buffers) {
  try {
    buffers.per_stream = static_cast<size_t>((s.batch / s.streams + 1) * s.window * s.negative);
    GrowTo(buffers.negatives, buffers.per_stream * static_cast<size_t>(streams));
    buffers.part_scratch = static_cast<size_t>(2 * s.dim + s.batch / s.streams + 1);
    GrowTo(buffers.scratch, buffers.part_scratch * static_cast<size_t>(threads));
    buffers.bad_ids.assign(static_cast<size_t>(streams), -1);
    buffers.part_threads.resize(static_cast<size_t>(threads));
    buffers.part_centres.assign(static_cast<size_t>(threads), 0);
    const auto parts = static_cast<size_t>(threads), rows = static_cast<size_t>(hot);
    for (auto* copies : {&buffers.e_copies, &buffers.w_copies}) GrowTo(*copies, parts);
    for (auto* live : {&buffers.e_live, &buffers.w_live}) GrowTo(*live, parts);
    for (size_t p = 0; p < parts; ++p) {
      GrowTo(buffers.e_copies[p], rows * static_cast<size_t>(s.dim));
      GrowTo(buffers.e_live[p], rows);
      if (s.tied) continue;  // one table: its copies are e_copies
      GrowTo(buffers.w_copies[p], rows * static_cast<size_t>(s.dim));
      GrowTo(buffers.w_live[p], rows);
    }
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      "ns_sgd: cannot allocate the step's buffers (" + std::to_string(s.batch) + " centres, " +
                          std::to_string(s.negative) + " negatives per pair)");
  }
  // A new mark per call, so no copy from an earlier call is live (after 2^32 calls, clear them).
  if (++buffers.now == 0) {
    for (auto* lives : {&buffers.e_live, &buffers.w_live})
      for (auto& live : *lives) std::fill(live.begin(), live.end(), 0u);
    buffers.now = 1;
  }
  return ffi::Error::Success();
}

PartRows RowsOf(const Step& s, Buffers& buffers, int part, int64_t hot) {
  float* e_copies = buffers.e_copies[part].data();
  uint32_t* e_live = buffers.e_live[part].data();
  if (s.tied) return {s.E, s.W, s.dim, hot, e_copies, e_copies, e_live, e_live, buffers.now};
  return {s.E, s.W, s.dim, hot, e_copies, buffers.w_copies[part].data(), e_live, buffers.w_live[part].data(),
          buffers.now};
}

// The parts' changes to the hot rows, into the tables (MergeCopies), the rows split between the threads.
std::string MergeStep(const Step& s, Buffers& buffers, int threads, int64_t hot, ffi::ThreadPool& pool) {
  std::vector<PartRows> parts;
  for (int p = 0; p < threads; ++p) parts.push_back(RowsOf(s, buffers, p, hot));
  return Parallel(pool, threads, [&](int part) {
    const int64_t begin = hot * part / threads, end = hot * (part + 1) / threads;
    MergeCopies(parts, false, begin, end);
    if (!s.tied) MergeCopies(parts, true, begin, end);
  });
}

ffi::Error RunStep(const Step& s, int64_t workers, ffi::ThreadPool& pool) {
  if (ffi::Error error = CheckIds(s); error.failure()) return error;
  const int64_t streams = std::max<int64_t>(1, std::min(s.streams, s.batch));  // the ones with centres
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min(workers, streams)));
  const int64_t hot = threads == 1 ? 0 : std::min({s.rows_e, s.rows_w, kCopyFloats / std::max<int64_t>(1, s.dim)});
  static thread_local Buffers callers_buffers;
  Buffers& buffers = callers_buffers;  // a name the workers' lambdas capture (a thread_local's would be their own)
  if (ffi::Error error = Allocate(s, streams, threads, hot, buffers); error.failure()) return error;
  // The draws of every stream first, so that a bad noise id fails the call before any row changes.
  std::string failed = Parallel(pool, threads, [&](int part) {
    for (int64_t stream = part; stream < streams; stream += threads)
      DrawNegatives(s, stream, buffers.negatives.data() + stream * buffers.per_stream, buffers.bad_ids[stream]);
  });
  if (!failed.empty()) return ffi::Error::Internal("ns_sgd: drawing the negatives failed: " + failed);
  for (int64_t id : buffers.bad_ids)
    if (id >= 0)
      return ffi::Error::InvalidArgument("ns_sgd: noise table id " + std::to_string(id) + " outside W's " +
                                         std::to_string(s.rows_w) + " rows");
  // Thread t trains streams t, t + threads, ... in order: the hot rows in its own copies, the rest
  // in the tables themselves; then the copies' changes go into the tables.
  failed = Parallel(pool, threads, [&](int part) {
    buffers.part_threads[part] = std::this_thread::get_id();
    float* scratch = buffers.scratch.data() + buffers.part_scratch * part;
    const PartRows rows = RowsOf(s, buffers, part, hot);
    for (int64_t stream = part; stream < streams; stream += threads)
      buffers.part_centres[part] += TrainStream(s, rows, stream, buffers.negatives.data() + stream * buffers.per_stream,
                                                scratch, scratch + 2 * s.dim);
  });
  if (failed.empty() && hot > 0) failed = MergeStep(s, buffers, threads, hot, pool);
  if (!failed.empty()) return ffi::Error::Internal("ns_sgd: training failed: " + failed);
  RecordThreadWork(buffers.part_threads, buffers.part_centres);
  return ffi::Error::Success();
}

// XLA aliases each table's input and output buffer; should it ever hand us distinct
// buffers (an undonated input it chose not to copy), start the output from the input.
float* StartFrom(const Table& in, TableOut& out) {
  float* data = out->typed_data();
  if (data != in.typed_data()) std::memcpy(data, in.typed_data(), in.size_bytes());
  return data;
}

// The operands every step takes besides its tables.
struct Batch {
  Ids1 centers;
  Ids2 contexts;
  Ids1 noise;
  Seed seed;
  Floats1 mask;
  Scalar lr;
};

ffi::Error Describe(Step& s, const Table& E, const Table& W, const Batch& in, int64_t negative, int64_t streams,
                    LossesOut& losses) {
  s.rows_e = E.dimensions()[0];
  s.rows_w = W.dimensions()[0];
  s.dim = E.dimensions()[1];
  s.batch = in.centers.dimensions()[0];
  s.window = in.contexts.dimensions()[1];
  s.negative = negative;
  s.streams = streams;
  const int64_t noise_size = in.noise.dimensions()[0];
  if (W.dimensions()[1] != s.dim)
    return ffi::Error::InvalidArgument("ns_sgd: E and W must have the same row length");
  if (in.contexts.dimensions()[0] != s.batch || in.mask.dimensions()[0] != s.batch ||
      losses->dimensions()[0] != s.batch)
    return ffi::Error::InvalidArgument("ns_sgd: centers, contexts, mask and losses need one row per centre");
  if (negative < 0 || streams < 1 || in.seed.dimensions()[0] != 2)
    return ffi::Error::InvalidArgument("ns_sgd: needs negative >= 0, streams >= 1 and a seed of two uint32");
  if (noise_size < 1 || (noise_size & (noise_size - 1)) != 0 || noise_size > (int64_t{1} << 32))
    return ffi::Error::InvalidArgument("ns_sgd: the noise table's size must be a power of two up to 2^32, got " +
                                       std::to_string(noise_size));
  s.noise_bits = 0;
  while ((int64_t{1} << s.noise_bits) < noise_size) ++s.noise_bits;
  s.centers = in.centers.typed_data();
  s.contexts = in.contexts.typed_data();
  s.noise = in.noise.typed_data();
  s.seed = (uint64_t{in.seed.typed_data()[0]} << 32) | in.seed.typed_data()[1];
  s.mask = in.mask.typed_data();
  s.lr = in.lr.typed_data()[0];
  s.losses = losses->typed_data();
  return ffi::Error::Success();
}

ffi::Error NsSgdUntiedImpl(Table E, Table W, Ids1 centers, Ids2 contexts, Ids1 noise, Seed seed, Floats1 mask,
                           Scalar lr, int64_t negative, int64_t streams, int64_t workers, ffi::ThreadPool pool,
                           TableOut E_out, TableOut W_out, LossesOut losses) {
  Step s;
  const Batch batch{centers, contexts, noise, seed, mask, lr};
  if (ffi::Error error = Describe(s, E, W, batch, negative, streams, losses); error.failure()) return error;
  s.tied = false;
  s.E = StartFrom(E, E_out);
  s.W = StartFrom(W, W_out);
  return RunStep(s, workers, pool);
}

ffi::Error NsSgdTiedImpl(Table E, Ids1 centers, Ids2 contexts, Ids1 noise, Seed seed, Floats1 mask, Scalar lr,
                         int64_t negative, int64_t streams, int64_t workers, ffi::ThreadPool pool, TableOut E_out,
                         LossesOut losses) {
  Step s;
  const Batch batch{centers, contexts, noise, seed, mask, lr};
  if (ffi::Error error = Describe(s, E, E, batch, negative, streams, losses); error.failure()) return error;
  s.tied = true;
  s.E = s.W = StartFrom(E, E_out);
  return RunStep(s, workers, pool);
}

}  // namespace

// The operands and attributes after the tables, the same for both handlers.
#define JAXGRAM_STEP_OPERANDS                         \
  .Arg<Ids1>()        /* centers */                   \
      .Arg<Ids2>()    /* contexts */                  \
      .Arg<Ids1>()    /* noise table */               \
      .Arg<Seed>()    /* seed: two uint32 */          \
      .Arg<Floats1>() /* mask */                      \
      .Arg<Scalar>()  /* lr */                        \
      .Attr<int64_t>("negative")                      \
      .Attr<int64_t>("streams")                       \
      .Attr<int64_t>("workers")                       \
      .Ctx<ffi::ThreadPool>()

// Two handlers rather than one with a `tied` attribute: a tied step has one table to
// alias, an untied step two, and the buffer lists differ accordingly.
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgramNsSgdUntied, NsSgdUntiedImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Table>()  // E
                                  .Arg<Table>()  // W
                                  JAXGRAM_STEP_OPERANDS
                                  .Ret<Table>()  // E, aliased
                                  .Ret<Table>()  // W, aliased
                                  .Ret<Floats1>());  // losses

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgramNsSgdTied, NsSgdTiedImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Table>()  // E (also W)
                                  JAXGRAM_STEP_OPERANDS
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

// For tests and diagnostics: how many distinct threads trained the last fused step, and
// (up to `capacity` of them) how many centres each trained, the calling thread's first.
extern "C" int64_t JaxgramLastStepThreads(int64_t* centres, int64_t capacity) {
  ThreadWork& record = LastStepWork();
  std::lock_guard<std::mutex> lock(record.mutex);
  const int64_t threads = static_cast<int64_t>(record.threads.size());
  for (int64_t t = 0; t < std::min(threads, capacity); ++t) centres[t] = record.centres[t];
  return threads;
}

namespace {

// Runs the step's Parallel on XLA's pool with `parts` parts, each waiting (up to a second)
// until every part has started, so parts run side by side when the pool lends threads.
// Part `fail_part` throws (fail_kind 0: std::runtime_error, 1: std::bad_alloc) instead.
// out[p] = 1 + the index of the thread that ran part p, threads numbered by first part.
ffi::Error ParallelProbeImpl(int64_t parts, int64_t fail_part, int64_t fail_kind, ffi::ThreadPool pool,
                             ThreadsOut out) {
  if (parts < 1 || out->dimensions()[0] != parts)
    return ffi::Error::InvalidArgument("parallel probe: needs parts >= 1 and one output per part");
  std::vector<std::thread::id> ran(static_cast<size_t>(parts));
  std::atomic<int64_t> started{0};
  const std::string failed = Parallel(pool, static_cast<int>(parts), [&](int part) {
    ran[part] = std::this_thread::get_id();
    started.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (started.load() < parts && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    if (part == fail_part) {
      if (fail_kind == 1) throw std::bad_alloc();
      throw std::runtime_error("part " + std::to_string(part) + " failed on purpose");
    }
  });
  if (!failed.empty()) return ffi::Error::Internal("parallel probe: " + failed);
  std::vector<std::thread::id> seen;
  for (int64_t p = 0; p < parts; ++p) {
    auto found = std::find(seen.begin(), seen.end(), ran[p]);
    if (found == seen.end()) found = seen.insert(seen.end(), ran[p]);
    out->typed_data()[p] = static_cast<int32_t>(1 + (found - seen.begin()));
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxgramParallelProbe, ParallelProbeImpl,
                              ffi::Ffi::Bind()
                                  .Attr<int64_t>("parts")
                                  .Attr<int64_t>("fail_part")
                                  .Attr<int64_t>("fail_kind")
                                  .Ctx<ffi::ThreadPool>()
                                  .Ret<Threads1>());
