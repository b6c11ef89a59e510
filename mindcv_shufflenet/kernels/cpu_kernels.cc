// CPU kernels for the layers where MindSpore 2.10's own CPU kernels are slowest in ShuffleNet:
// the 3x3 depthwise convolution (forward, input gradient, weight gradient) and the 3x3 stride-2
// max and average pools (forward, gradient). kernels/cpu_ops.py compiles this file and calls it through MindSpore
// "aot" custom operators. Each exported function has that interface: params holds the inputs, then
// the output; shapes[i] is the shape of params[i]; a non-zero return is an error. Tensors are
// float32, NCHW, contiguous. Every (image, channel) plane is independent, so the work is split over
// planes (over channels for the weight gradient, which sums over images) between threads.

#include <cfloat>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <thread>
#include <vector>
#ifdef __linux__
#include <sched.h>
#endif

namespace {

int cpu_count() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// Runs body(begin, end) over [0, n) split into contiguous chunks, one per thread: as many threads as
// there are CPUs, but each with at least 256K units of work (a unit: one value read or one
// multiply-add; ~100 us). Threads are started per call rather than kept spinning: between these
// kernels MindSpore's own threads need the cores, and an OpenMP pool's spin-waiting took them
// (inference ran 1.5x slower with it). Starting one costs tens of microseconds, far more on a loaded
// machine, where it waits for a core: with 32K units a thread, batch-1 inference ran 2-4x slower.
template <typename Body>
void parallel_for(int64_t n, int64_t work_per_item, Body body) {
  static const int64_t cpus = cpu_count();
  const int64_t by_work = std::max<int64_t>(1, n * work_per_item / (1 << 18));
  const int64_t threads = std::min({cpus, by_work, n});
  if (threads <= 1) {
    body(int64_t(0), n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(body, n * t / threads, n * (t + 1) / threads);
  body(int64_t(0), n / threads);
  for (auto &th : pool) th.join();
}

bool all_float32(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

// ---- 3x3 stride-2 max pool ---------------------------------------------------------------------
// PAD_SAME: MindSpore's pad_mode="same" (top/left padding = half the total, rounded down: none for
// even sizes); otherwise one on every side. Padding never wins the max.

int pool_pad(bool same, int64_t in, int64_t out) {
  if (!same) return 1;
  const int64_t total = std::max<int64_t>((out - 1) * 2 + 3 - in, 0);
  return static_cast<int>(total / 2);
}

// The input rows (or columns) [begin, end) of output row o's window: 3 wide, stride 2, clipped to
// the input (the padding is never read).
struct Span {
  int64_t begin, end;
};
Span window(int64_t o, int64_t pad, int64_t size) {
  return {std::max<int64_t>(o * 2 - pad, 0), std::min<int64_t>(o * 2 - pad + 3, size)};
}

template <bool SAME>
int max_pool_forward(void **params, int64_t **shapes) {
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[1][2], OW = shapes[1][3];
  const int64_t pt = pool_pad(SAME, H, OH), pl = pool_pad(SAME, W, OW);
  parallel_for(N * C, H * W, [=](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *xp = x + p * H * W;
      float *yp = y + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const auto [h0, h1] = window(oh, pt, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const auto [w0, w1] = window(ow, pl, W);
          float m = -FLT_MAX;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) m = std::max(m, xp[ih * W + iw]);
          yp[oh * OW + ow] = m;
        }
      }
    }
  });
  return 0;
}

// Inputs x, dy; output dx. Each output's gradient goes to the first maximum of its window in
// row-major order, as MindSpore's own MaxPoolGrad does (ties are common: the pool reads a ReLU).
template <bool SAME>
int max_pool_backward(void **params, int64_t **shapes) {
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[1][2], OW = shapes[1][3];
  const int64_t pt = pool_pad(SAME, H, OH), pl = pool_pad(SAME, W, OW);
  parallel_for(N * C, H * W, [=](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *xp = x + p * H * W;
      const float *dyp = dy + p * OH * OW;
      float *dxp = dx + p * H * W;
      std::memset(dxp, 0, sizeof(float) * H * W);
      for (int64_t oh = 0; oh < OH; ++oh) {
        const auto [h0, h1] = window(oh, pt, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const auto [w0, w1] = window(ow, pl, W);
          int64_t arg = h0 * W + w0;
          float m = xp[arg];
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw)
              if (xp[ih * W + iw] > m) { m = xp[ih * W + iw]; arg = ih * W + iw; }
          dxp[arg] += dyp[oh * OW + ow];
        }
      }
    }
  });
  return 0;
}

// ---- 3x3 stride-2 average pool ------------------------------------------------------------------
// PAD_SAME: pad_mode="same", the divisor counts only the window's values inside the input;
// otherwise one on every side, and the divisor is always 9 (the padding counted, as PyTorch's
// count_include_pad=True).

template <bool SAME>
int avg_pool_forward(void **params, int64_t **shapes) {
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[1][2], OW = shapes[1][3];
  const int64_t pt = pool_pad(SAME, H, OH), pl = pool_pad(SAME, W, OW);
  parallel_for(N * C, H * W, [=](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *xp = x + p * H * W;
      float *yp = y + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const auto [h0, h1] = window(oh, pt, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const auto [w0, w1] = window(ow, pl, W);
          float sum = 0.f;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) sum += xp[ih * W + iw];
          yp[oh * OW + ow] = sum / (SAME ? static_cast<float>((h1 - h0) * (w1 - w0)) : 9.f);
        }
      }
    }
  });
  return 0;
}

// Inputs x (only its shape is read), dy; output dx.
template <bool SAME>
int avg_pool_backward(void **params, int64_t **shapes) {
  const float *dy = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[1][2], OW = shapes[1][3];
  const int64_t pt = pool_pad(SAME, H, OH), pl = pool_pad(SAME, W, OW);
  parallel_for(N * C, H * W, [=](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float *dyp = dy + p * OH * OW;
      float *dxp = dx + p * H * W;
      std::memset(dxp, 0, sizeof(float) * H * W);
      for (int64_t oh = 0; oh < OH; ++oh) {
        const auto [h0, h1] = window(oh, pt, H);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const auto [w0, w1] = window(ow, pl, W);
          const float g = dyp[oh * OW + ow] / (SAME ? static_cast<float>((h1 - h0) * (w1 - w0)) : 9.f);
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) dxp[ih * W + iw] += g;
        }
      }
    }
  });
  return 0;
}

// ---- 3x3 depthwise convolution, padding 1, stride S --------------------------------------------
// x (N, C, H, W), w (C, 1, 3, 3), y (N, C, OH, OW). Planes are copied into a zero-bordered buffer so
// that the inner loops have no bounds checks and (for stride 1) vectorize.

void pad_plane(const float *src, int64_t H, int64_t W, float *dst) {
  const int64_t PW = W + 2;
  std::memset(dst, 0, sizeof(float) * PW);
  for (int64_t h = 0; h < H; ++h) {
    float *row = dst + (h + 1) * PW;
    row[0] = 0.f;
    std::memcpy(row + 1, src + h * W, sizeof(float) * W);
    row[W + 1] = 0.f;
  }
  std::memset(dst + (H + 1) * PW, 0, sizeof(float) * PW);
}

template <int S>
void depthwise_plane(const float *xpad, int64_t PW, const float *k, float *y, int64_t OH, int64_t OW) {
  for (int64_t oh = 0; oh < OH; ++oh) {
    float *out = y + oh * OW;
    const float *r0 = xpad + (oh * S) * PW, *r1 = r0 + PW, *r2 = r1 + PW;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t i = ow * S;
      out[ow] = k[0] * r0[i] + k[1] * r0[i + 1] + k[2] * r0[i + 2]
              + k[3] * r1[i] + k[4] * r1[i + 1] + k[5] * r1[i + 2]
              + k[6] * r2[i] + k[7] * r2[i + 1] + k[8] * r2[i + 2];
    }
  }
}

// Inputs x, w; output y.
template <int S>
int depthwise_forward(void **params, int64_t **shapes) {
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[2][2], OW = shapes[2][3];
  parallel_for(N * C, H * W * 9, [=](int64_t begin, int64_t end) {
    std::vector<float> xpad((H + 2) * (W + 2));
    for (int64_t p = begin; p < end; ++p) {
      pad_plane(x + p * H * W, H, W, xpad.data());
      depthwise_plane<S>(xpad.data(), W + 2, w + (p % C) * 9, y + p * OH * OW, OH, OW);
    }
  });
  return 0;
}

// Inputs x (only its shape is read), w, dy; output dx.
template <int S>
int depthwise_backward_input(void **params, int64_t **shapes) {
  const float *w = static_cast<const float *>(params[1]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[2][2], OW = shapes[2][3];
  parallel_for(N * C, H * W * 9, [=](int64_t begin, int64_t end) {
    if (S == 1) {
      // a stride-1 convolution's input gradient is the convolution of dy with the flipped kernel
      std::vector<float> dypad((OH + 2) * (OW + 2));
      for (int64_t p = begin; p < end; ++p) {
        const float *k = w + (p % C) * 9;
        const float flipped[9] = {k[8], k[7], k[6], k[5], k[4], k[3], k[2], k[1], k[0]};
        pad_plane(dy + p * OH * OW, OH, OW, dypad.data());
        depthwise_plane<1>(dypad.data(), OW + 2, flipped, dx + p * H * W, H, W);
      }
    } else {
      // stride 2: scatter each output's gradient over its window, in a zero-bordered plane
      const int64_t PW = W + 2;
      std::vector<float> dxpad((H + 2) * PW);
      for (int64_t p = begin; p < end; ++p) {
        const float *k = w + (p % C) * 9;
        const float *g = dy + p * OH * OW;
        std::fill(dxpad.begin(), dxpad.end(), 0.f);
        for (int64_t oh = 0; oh < OH; ++oh) {
          const float *grow = g + oh * OW;
          for (int kh = 0; kh < 3; ++kh) {
            float *row = dxpad.data() + (oh * S + kh) * PW;
            const float k0 = k[kh * 3], k1 = k[kh * 3 + 1], k2 = k[kh * 3 + 2];
            for (int64_t ow = 0; ow < OW; ++ow) {
              const float v = grow[ow];
              row[ow * S] += k0 * v;
              row[ow * S + 1] += k1 * v;
              row[ow * S + 2] += k2 * v;
            }
          }
        }
        float *out = dx + p * H * W;
        for (int64_t h = 0; h < H; ++h) std::memcpy(out + h * W, dxpad.data() + (h + 1) * PW + 1, sizeof(float) * W);
      }
    }
  });
  return 0;
}

// Inputs x, w (only its shape is read), dy; output dw. Sums per row in float, across rows and
// images in double.
template <int S>
int depthwise_backward_weight(void **params, int64_t **shapes) {
  const float *x = static_cast<const float *>(params[0]);
  const float *dy = static_cast<const float *>(params[2]);
  float *dw = static_cast<float *>(params[3]);
  const int64_t N = shapes[0][0], C = shapes[0][1], H = shapes[0][2], W = shapes[0][3];
  const int64_t OH = shapes[2][2], OW = shapes[2][3];
  const int64_t PW = W + 2;
  parallel_for(C, N * H * W * 9, [=](int64_t begin, int64_t end) {
    std::vector<float> xpad((H + 2) * PW);
    for (int64_t c = begin; c < end; ++c) {
      double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t n = 0; n < N; ++n) {
        const int64_t p = n * C + c;
        pad_plane(x + p * H * W, H, W, xpad.data());
        const float *g = dy + p * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
          const float *grow = g + oh * OW;
          for (int kh = 0; kh < 3; ++kh) {
            const float *r = xpad.data() + (oh * S + kh) * PW;
            float s0 = 0.f, s1 = 0.f, s2 = 0.f;
            for (int64_t ow = 0; ow < OW; ++ow) {
              const float v = grow[ow];
              s0 += v * r[ow * S];
              s1 += v * r[ow * S + 1];
              s2 += v * r[ow * S + 2];
            }
            acc[kh * 3] += s0;
            acc[kh * 3 + 1] += s1;
            acc[kh * 3 + 2] += s2;
          }
        }
      }
      for (int i = 0; i < 9; ++i) dw[c * 9 + i] = static_cast<float>(acc[i]);
    }
  });
  return 0;
}

}  // namespace

#define AOT_KERNEL(name, impl)                                                                     \
  extern "C" int name(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, \
                      void *stream, void *extra) {                                                 \
    (void)ndims; (void)stream; (void)extra;                                                        \
    if (!all_float32(nparam, dtypes)) return 1;                                                    \
    return impl(params, shapes);                                                                   \
  }

AOT_KERNEL(MaxPoolSameForward, max_pool_forward<true>)
AOT_KERNEL(MaxPoolSameBackward, max_pool_backward<true>)
AOT_KERNEL(MaxPoolSymmetricForward, max_pool_forward<false>)
AOT_KERNEL(MaxPoolSymmetricBackward, max_pool_backward<false>)
AOT_KERNEL(AvgPoolSameForward, avg_pool_forward<true>)
AOT_KERNEL(AvgPoolSameBackward, avg_pool_backward<true>)
AOT_KERNEL(AvgPoolSymmetricForward, avg_pool_forward<false>)
AOT_KERNEL(AvgPoolSymmetricBackward, avg_pool_backward<false>)
AOT_KERNEL(DepthwiseForwardS1, depthwise_forward<1>)
AOT_KERNEL(DepthwiseForwardS2, depthwise_forward<2>)
AOT_KERNEL(DepthwiseBackwardInputS1, depthwise_backward_input<1>)
AOT_KERNEL(DepthwiseBackwardInputS2, depthwise_backward_input<2>)
AOT_KERNEL(DepthwiseBackwardWeightS1, depthwise_backward_weight<1>)
AOT_KERNEL(DepthwiseBackwardWeightS2, depthwise_backward_weight<2>)
