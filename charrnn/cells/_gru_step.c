/* The GRU's per-step elementwise maths on the CPU, fused into one pass over
 * the step's rows (cells/gru_cstep.py calls it between the step's GEMMs).
 *
 * Why C: in PyTorch each step's four elementwise ops (sigmoid, addcmul,
 * tanh, lerp; four products and an addcmul back) each cost a dispatch and a
 * pass over memory, on rows of 8-16k values, which dominates the loop.
 * One pass here does a step's forward or backward in one call.
 *
 * This is an optional extension (setup.py): where it does not build, gru_cpu
 * runs the same maths as PyTorch ops. It takes raw pointers, from Python
 * ints, to tensors gru_cstep.py has made contiguous in the layouts below;
 * it has no other view of them, so gru_cstep.py checks device, dtypes and
 * shapes before the first call.
 *
 * Layouts, per step, H the hidden size, each row-major:
 *   gi, gh (B, 3H): the input and recurrent halves [r | z | n], biases
 *                   included, as the GEMMs gave them (fp32, fp64 or bf16);
 *   gates  (B, 3H): [r | z | gh_n], written forward for the backward;
 *   d_gi   (B, 3H): [dN | dz | dr], N being n's pre-activation: the input
 *                   GEMMs' gradient, blocks in order n, z, r;
 *   d_gh   (B, 3H): [dz | dr | dgh_n]: the recurrent GEMMs' gradient, blocks
 *                   in order z, r, n (each its own buffer, so that every
 *                   GEMM reads contiguous rows: a strided view cost oneDNN
 *                   a copy per step);
 *   sums   (4H):    [dN | dz | dr | dgh_n] summed over the step's B rows
 *                   (state dtype): the biases' gradients, once summed
 *                   over the steps;
 *   h, n, h_next, carry, mm, dout_prev, carry_out (B, H).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* gcc builds each kernel for x86-64-v4 (AVX-512 with its 16-bit element
 * ops: plain "avx512f" left the bf16 loops much slower), v3 (AVX2, FMA) and
 * baseline x86-64, and picks one at load time: one build runs at its best on
 * any x86-64 CPU. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__) && \
    defined(__linux__) && defined(__GLIBC__) /* arch= clones: gcc 12; ifunc: glibc */
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* "No iteration of these loops stores where another loads or stores", in
 * each compiler's words. */
#if defined(__clang__)
#define IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define IVDEP _Pragma("GCC ivdep")
#elif defined(_MSC_VER)
#define IVDEP __pragma(loop(ivdep))
#else
#define IVDEP
#endif

/* Raised whenever an argument list changes: gru_cstep.py refuses a build
 * older than itself (an editable install keeps the last one built). */
#define ABI 3

/* Bit casts through a union: defined behaviour in C. */
typedef union { float f; uint32_t u; } bits32;

/* e^x in float, within a few ulp, written without branches, libm calls or
 * float-to-int conversions so that gcc vectorizes the loops that use it:
 * x = k ln2 + f with |f| <= ln2/2, e^f by Cephes expf's polynomial, 2^k put
 * into an exponent field. NaN stays NaN (the clamps compare false on it). */
static inline float exp_f(float x) {
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    bits32 k = {.f = x * 1.44269504088896341f + magic};
    float kf = k.f - magic;
    float f = x - kf * 0.693359375f + kf * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * f * f + f + 1.0f;
    bits32 scale = {.u = (k.u - 0x4B400000u + 127u) << 23}; /* k.u's low bits hold k */
    return p * scale.f;
}

static inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }
/* Within about 1e-7 of tanh (absolute; near 0 not in relative terms). */
static inline float tanh_f(float x) { return 1.0f - 2.0f / (exp_f(2.0f * x) + 1.0f); }
static inline double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

/* bf16 as its 16 top bits of a float: widening is a shift; narrowing
 * rounds to nearest even, NaN kept a (quiet) NaN. */
static inline float bf16_load(uint16_t v) { bits32 b = {.u = (uint32_t)v << 16}; return b.f; }
static inline uint16_t bf16_store(float f) {
    bits32 b = {.f = f};
    uint32_t rounded = (b.u + 0x7FFFu + ((b.u >> 16) & 1u)) >> 16;
    return f != f ? (uint16_t)0x7FC0 : (uint16_t)rounded;
}
static inline float f_load(float v) { return v; }
static inline double d_load(double v) { return v; }

/* Forward: r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
 * n = tanh(gi_n + r gh_n), h_next = (1 - z) n + z h; gates gets [r|z|gh_n].
 * gi and gh (the GEMMs' outputs, biases included) are of type G, the state
 * of type S: float/float, double/double (gradcheck's), float/bf16 (bf16
 * GEMMs); with bf16 GEMMs h_next is also written as bf16 (h_next_g), the
 * next step's GEMM input. */
#define FORWARD(NAME, S, G, LOAD, SIGMOID, TANH)                                            \
    CLONES static void NAME(int64_t B, int64_t H, const G *gi, const G *gh, const S *h,    \
                            S *gates, S *n, S *h_next) {                                    \
        for (int64_t b = 0; b < B; b++) {                                                   \
            const G *xr = gi + b * 3 * H, *xz = xr + H, *xn = xr + 2 * H;                   \
            const G *hr = gh + b * 3 * H, *hz = hr + H, *hn = hr + 2 * H;                   \
            const S *hb = h + b * H;                                                        \
            S *r = gates + b * 3 * H, *z = r + H, *gh_n = r + 2 * H;                        \
            S *nb = n + b * H, *out = h_next + b * H;                                       \
            IVDEP for (int64_t j = 0; j < H; j++) {                                         \
                S rj = SIGMOID((S)LOAD(xr[j]) + (S)LOAD(hr[j]));                            \
                S zj = SIGMOID((S)LOAD(xz[j]) + (S)LOAD(hz[j]));                            \
                S ghj = LOAD(hn[j]);                                                        \
                S nj = TANH((S)LOAD(xn[j]) + rj * ghj);                                     \
                r[j] = rj;                                                                  \
                z[j] = zj;                                                                  \
                gh_n[j] = ghj;                                                              \
                nb[j] = nj;                                                                 \
                out[j] = nj + zj * (hb[j] - nj);                                            \
            }                                                                               \
        }                                                                                   \
    }

FORWARD(forward_f, float, float, f_load, sigmoid_f, tanh_f)
FORWARD(forward_d, double, double, d_load, sigmoid_d, tanh)
FORWARD(forward_bf, float, uint16_t, bf16_load, sigmoid_f, tanh_f)

CLONES static void narrow_bf(int64_t count, const float *src, uint16_t *dst) {
    IVDEP for (int64_t i = 0; i < count; i++) dst[i] = bf16_store(src[i]);
}

/* Backward, given dh = dL/dh(t) = carry + mm (mm: the GEMM's part, of type
 * G): the rows d_gi and d_gh, of type G (the GEMMs' input), and
 * carry_out = dout(t-1) + z dh, dh(t-1) but for the GEMM's part; adds the
 * step's column sums of [dN | dz | dr | dgh_n], as computed (before any
 * rounding to bf16), to sums (4H, type S): the biases' gradients come
 * without a pass over the window's rows afterwards (a bf16 one cost a copy
 * to fp32). Each step's sums get their own row, which the caller sums over
 * the steps: one running sum over a window's T*B = 8192 rows landed 20x
 * further from fp64 than nn.GRU's bias gradients (4e-4 against 2e-5 on
 * gradients of about 300; 4e-5 with a row per step). Every
 * pointer is real (the caller passes zeros or scratch where a step has no
 * such part), so the loop has no branches and vectorizes. */
#define BACKWARD(NAME, S, G, LOAD, STORE)                                                   \
    CLONES static void NAME(int64_t B, int64_t H, const S *carry, const G *mm, const S *gates, \
                            const S *n, const S *h, const S *dout_prev, G *d_gi, G *d_gh,  \
                            S *carry_out, S *sums) {                                        \
        for (int64_t b = 0; b < B; b++) {                                                   \
            const S *r = gates + b * 3 * H, *z = r + H, *gh_n = r + 2 * H;                  \
            const S *c = carry + b * H, *nb = n + b * H, *hb = h + b * H;                   \
            const S *dp = dout_prev + b * H;                                                \
            const G *m = mm + b * H;                                                        \
            S *co = carry_out + b * H;                                                      \
            G *dN = d_gi + b * 3 * H, *dz = dN + H, *dr = dN + 2 * H;                       \
            G *dz_h = d_gh + b * 3 * H, *dr_h = dz_h + H, *dgh = dz_h + 2 * H;              \
            S *sN = sums, *sz = sums + H, *sr = sums + 2 * H, *sgh = sums + 3 * H;          \
            IVDEP for (int64_t j = 0; j < H; j++) {                                         \
                S d = c[j] + (S)LOAD(m[j]);                                                 \
                S zj = z[j], rj = r[j], nj = nb[j];                                         \
                S dn = d * (1 - zj) * (1 - nj * nj);                                        \
                S vz = d * (hb[j] - nj) * zj * (1 - zj);                                    \
                S vr = dn * gh_n[j] * rj * (1 - rj);                                        \
                S vgh = dn * rj;                                                            \
                G gz = STORE(vz), gr = STORE(vr);                                           \
                dN[j] = STORE(dn);                                                          \
                dz[j] = gz;                                                                 \
                dr[j] = gr;                                                                 \
                dz_h[j] = gz;                                                               \
                dr_h[j] = gr;                                                               \
                dgh[j] = STORE(vgh);                                                        \
                sN[j] += dn;                                                                \
                sz[j] += vz;                                                                \
                sr[j] += vr;                                                                \
                sgh[j] += vgh;                                                              \
                co[j] = dp[j] + zj * d;                                                     \
            }                                                                               \
        }                                                                                   \
    }

BACKWARD(backward_f, float, float, f_load, f_load)
BACKWARD(backward_d, double, double, d_load, d_load)
BACKWARD(backward_bf, float, uint16_t, bf16_load, bf16_store)

/* ---- Python side: every argument is an int (a kind, sizes, addresses;
 * none may be 0). Kinds: 0 float, 1 double, 2 float state with bf16 GEMMs. */

static int read_ints(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, int64_t *out) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        out[i] = (int64_t)PyLong_AsLongLong(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    if (out[0] < 0 || out[0] > 2) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0 (float), 1 (double) or 2 (bf16 GEMMs)");
        return -1;
    }
    return 0;
}

#define PTR(v) ((void *)(intptr_t)(v))

/* forward(kind, B, H, gi, gh, h, gates, n, h_next, h_next_bf16) */
static PyObject *py_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[10];
    if (read_ints(args, nargs, 10, a) < 0) return NULL;
    if (a[0] == 0)
        forward_f(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]));
    else if (a[0] == 1)
        forward_d(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]));
    else {
        forward_bf(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]));
        narrow_bf(a[1] * a[2], PTR(a[8]), PTR(a[9]));
    }
    Py_RETURN_NONE;
}

/* backward(kind, B, H, carry, mm, gates, n, h, dout_prev, d_gi, d_gh, carry_out, sums) */
static PyObject *py_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[13];
    if (read_ints(args, nargs, 13, a) < 0) return NULL;
#define BACKWARD_ARGS a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]), \
                      PTR(a[9]), PTR(a[10]), PTR(a[11]), PTR(a[12])
    if (a[0] == 0)
        backward_f(BACKWARD_ARGS);
    else if (a[0] == 1)
        backward_d(BACKWARD_ARGS);
    else
        backward_bf(BACKWARD_ARGS);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", (PyCFunction)(void (*)(void))py_forward, METH_FASTCALL,
     "forward(kind, B, H, gi, gh, h, gates, n, h_next, h_next_bf16): one GRU step's gates and state"},
    {"backward", (PyCFunction)(void (*)(void))py_backward, METH_FASTCALL,
     "backward(kind, B, H, carry, mm, gates, n, h, dout_prev, d_gi, d_gh, carry_out, sums): one step back"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gru_step", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gru_step(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
