/* The GRU's per-step elementwise maths on the CPU, fused into one pass over
 * the step's rows (cells/gru_cpu.py calls it between the step's GEMMs).
 *
 * Why C: in PyTorch each step's four elementwise ops (sigmoid, addcmul,
 * tanh, lerp; four products and an addcmul back) cost 10-30 us each in the
 * loop, on rows of 8-16k values: dispatch and a pass over memory per op.
 * One pass here does a step's forward or backward in one call.
 *
 * This is an optional extension (setup.py): where it does not build, gru_cpu
 * runs the same maths as PyTorch ops. It takes raw pointers, from Python
 * ints, to tensors gru_cpu has made contiguous in the layouts below; it has
 * no other view of them, so the Python side checks dtype and device.
 *
 * Layouts, per step and batch row b, H the hidden size:
 *   gates (B, 3H): [r | z | gh_n]; r and z arrive as pre-activations
 *                  (gi + W_hh h + biases) and leave as their sigmoids,
 *                  gh_n = W_hn h + b_hn stays (the backward needs it);
 *   gi    (B, 3H): the input half, whose last block gi_n is read;
 *   h, n, h_next, dh, carry, dout_prev (B, H);
 *   rows  (B, 4H): [dN | dz | dr | dgh_n], N being n's pre-activation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* gcc builds each kernel for AVX-512, AVX2 and baseline x86-64 and picks
 * one at load time, so one build runs at its best on any x86-64 CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define CLONES
#endif

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
static inline float tanh_f(float x) { return 1.0f - 2.0f / (exp_f(2.0f * x) + 1.0f); }
static inline double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Forward: r, z = sigmoid(pre-activations) in place; n = tanh(gi_n + r gh_n);
 * h_next = (1 - z) n + z h. The same in float and double (the double one
 * serves gradcheck). */
#define FORWARD(NAME, T, SIGMOID, TANH)                                                     \
    CLONES static void NAME(int64_t B, int64_t H, T *gates, const T *gi, const T *h, T *n, \
                            T *h_next) {                                                    \
        for (int64_t b = 0; b < B; b++) {                                                   \
            T *r = gates + b * 3 * H, *z = r + H;                                           \
            const T *gh_n = r + 2 * H, *gi_n = gi + b * 3 * H + 2 * H, *hb = h + b * H;     \
            T *nb = n + b * H, *out = h_next + b * H;                                       \
            _Pragma("GCC ivdep") for (int64_t j = 0; j < H; j++) {                          \
                T rj = SIGMOID(r[j]), zj = SIGMOID(z[j]);                                   \
                T nj = TANH(gi_n[j] + rj * gh_n[j]);                                        \
                r[j] = rj;                                                                  \
                z[j] = zj;                                                                  \
                nb[j] = nj;                                                                 \
                out[j] = nj + zj * (hb[j] - nj);                                            \
            }                                                                               \
        }                                                                                   \
    }

FORWARD(forward_f, float, sigmoid_f, tanh_f)
FORWARD(forward_d, double, sigmoid_d, tanh)

/* Backward, given dh = dL/dh(t): the row [dN | dz | dr | dgh_n] and, unless
 * carry is NULL, carry = dout(t-1) + z dh (dh(t-1) before the GEMM through
 * W_hh adds the rest; without dout_prev, just z dh). */
#define BACKWARD(NAME, T)                                                                   \
    CLONES static void NAME(int64_t B, int64_t H, const T *dh, const T *gates, const T *n,  \
                            const T *h, const T *dout_prev, T *rows, T *carry) {            \
        for (int64_t b = 0; b < B; b++) {                                                   \
            const T *r = gates + b * 3 * H, *z = r + H, *gh_n = r + 2 * H;                  \
            const T *d = dh + b * H, *nb = n + b * H, *hb = h + b * H;                      \
            T *dN = rows + b * 4 * H, *dz = dN + H, *dr = dN + 2 * H, *dgh = dN + 3 * H;    \
            _Pragma("GCC ivdep") for (int64_t j = 0; j < H; j++) {                          \
                T zj = z[j], rj = r[j], nj = nb[j];                                         \
                T dn = d[j] * (1 - zj) * (1 - nj * nj);                                     \
                dN[j] = dn;                                                                 \
                dz[j] = d[j] * (hb[j] - nj) * zj * (1 - zj);                                \
                dr[j] = dn * gh_n[j] * rj * (1 - rj);                                       \
                dgh[j] = dn * rj;                                                           \
            }                                                                               \
            if (!carry) continue;                                                           \
            T *c = carry + b * H;                                                           \
            const T *dp = dout_prev ? dout_prev + b * H : NULL;                             \
            if (dp) {                                                                       \
                _Pragma("GCC ivdep") for (int64_t j = 0; j < H; j++) c[j] = dp[j] + z[j] * d[j]; \
            } else {                                                                        \
                _Pragma("GCC ivdep") for (int64_t j = 0; j < H; j++) c[j] = z[j] * d[j];   \
            }                                                                               \
        }                                                                                   \
    }

BACKWARD(backward_f, float)
BACKWARD(backward_d, double)

/* ---- Python side: every argument is an int (sizes, element size, addresses). */

static int read_ints(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, int64_t *out) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        out[i] = (int64_t)PyLong_AsLongLong(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    if (out[0] != 4 && out[0] != 8) {
        PyErr_SetString(PyExc_ValueError, "element size must be 4 (float) or 8 (double)");
        return -1;
    }
    return 0;
}

#define PTR(v) ((void *)(intptr_t)(v))

/* forward(element_size, B, H, gates, gi, h, n, h_next) */
static PyObject *py_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[8];
    if (read_ints(args, nargs, 8, a) < 0) return NULL;
    if (a[0] == 4)
        forward_f(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]));
    else
        forward_d(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]));
    Py_RETURN_NONE;
}

/* backward(element_size, B, H, dh, gates, n, h, dout_prev or 0, rows, carry or 0) */
static PyObject *py_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    int64_t a[10];
    if (read_ints(args, nargs, 10, a) < 0) return NULL;
    if (a[0] == 4)
        backward_f(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]), PTR(a[9]));
    else
        backward_d(a[1], a[2], PTR(a[3]), PTR(a[4]), PTR(a[5]), PTR(a[6]), PTR(a[7]), PTR(a[8]), PTR(a[9]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", (PyCFunction)(void (*)(void))py_forward, METH_FASTCALL,
     "forward(element_size, B, H, gates, gi, h, n, h_next): one GRU step's gates and state"},
    {"backward", (PyCFunction)(void (*)(void))py_backward, METH_FASTCALL,
     "backward(element_size, B, H, dh, gates, n, h, dout_prev, rows, carry): one step back"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gru_step", NULL, -1, methods};

PyMODINIT_FUNC PyInit__gru_step(void) { return PyModule_Create(&module); }
