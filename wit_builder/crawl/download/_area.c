/* Area-averaging shrink of 8-bit, 3-channel images with the arithmetic of OpenCV's cv2.resize
 * INTER_AREA (its general, non-integer-factor path), result for result: the same weights (computed
 * in double, stored as float), each output value summed in float in the same order (source
 * columns left to right within a source row, then source rows top to bottom), each product
 * rounded before it is added (no fused multiply-add), rounded half to even and clamped at the end.
 * It is faster because it does less, not other arithmetic: a source row's bytes become floats
 * once (16 at a time) instead of at every use, the three channels of a pixel are one 4-lane SSE2
 * operation instead of three scalar ones, four source rows are summed across together
 * (independent sums the CPU overlaps), and a source row that two output rows share is summed
 * across once instead of twice. tests/crawl/test_area_resize.py compares it with
 * cv2.resize byte for byte; wit_builder/crawl/download/area.py decides when it is used.
 *
 * resize(src, src_width, src_height, dst, dst_width, dst_height): src and dst are writable or
 * read-only C-contiguous buffers of height x width x 3 bytes; the GIL is released meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct {
    int source;   /* source column (or row) */
    int target;   /* output column (or row) */
    float weight;
} Tap;

/* The taps of one axis: for each output index, the source indices it covers and their share of
 * the cell, in increasing source order. Returns how many. */
static int area_taps(int source_size, int target_size, double scale, Tap *taps)
{
    int count = 0;
    for (int target = 0; target < target_size; target++) {
        double start = target * scale, end = start + scale;
        double cell = scale < source_size - start ? scale : source_size - start;
        int first = (int)ceil(start), last = (int)floor(end);
        if (last > source_size - 1)
            last = source_size - 1;
        if (first > last)
            first = last;
        if (first - start > 1e-3)
            taps[count++] = (Tap){first - 1, target, (float)((first - start) / cell)};
        for (int source = first; source < last; source++)
            taps[count++] = (Tap){source, target, (float)(1.0 / cell)};
        if (end - last > 1e-3) {
            double part = end - last < 1.0 ? end - last : 1.0;
            part = part < cell ? part : cell;
            taps[count++] = (Tap){last, target, (float)(part / cell)};
        }
    }
    return count;
}

#define BLOCK 4  /* source rows summed across together: independent sums keep the CPU busy */

/* `count` bytes as floats (exactly), and one 0.0 after them: the 4th lane of the last pixel. */
static void to_floats(const unsigned char *bytes, size_t count, float *floats)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; i + 16 <= count; i += 16) {
        __m128i sixteen = _mm_loadu_si128((const __m128i *)(bytes + i));
        __m128i low = _mm_unpacklo_epi8(sixteen, zero), high = _mm_unpackhi_epi8(sixteen, zero);
        _mm_storeu_ps(floats + i, _mm_cvtepi32_ps(_mm_unpacklo_epi16(low, zero)));
        _mm_storeu_ps(floats + i + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(low, zero)));
        _mm_storeu_ps(floats + i + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(high, zero)));
        _mm_storeu_ps(floats + i + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(high, zero)));
    }
#endif
    for (; i < count; i++)
        floats[i] = (float)bytes[i];
    floats[count] = 0.0f;
}

/* Source rows first .. first + count - 1 (count <= BLOCK) summed across into `rows` (row r at
 * r * 4 * target_width: 4 floats per output pixel, the 4th unused). `pixels` holds room for
 * BLOCK rows of width * 3 + 1 floats. */
static void sum_across(const unsigned char *source, int width, int first, int count,
                       const Tap *taps, int tap_count, int target_width, float *rows,
                       float *pixels)
{
    size_t stride = (size_t)width * 3 + 1;
    for (int r = 0; r < count; r++)
        to_floats(source + (size_t)(first + r) * width * 3, (size_t)width * 3,
                  pixels + r * stride);
    int k = 0;
    for (int target = 0; target < target_width; target++) {
#if defined(__SSE2__)
        __m128 total[BLOCK];
        for (int r = 0; r < BLOCK; r++)
            total[r] = _mm_setzero_ps();
        for (; k < tap_count && taps[k].target == target; k++) {
            const float *pixel = pixels + 3 * taps[k].source;  /* lane 3: the next pixel's */
            __m128 weight = _mm_set1_ps(taps[k].weight);
            for (int r = 0; r < count; r++, pixel += stride)
                total[r] = _mm_add_ps(total[r], _mm_mul_ps(_mm_loadu_ps(pixel), weight));
        }
        for (int r = 0; r < count; r++)
            _mm_storeu_ps(rows + (size_t)r * 4 * target_width + 4 * target, total[r]);
#else
        float total[BLOCK][3] = {{0.0f}};
        for (; k < tap_count && taps[k].target == target; k++) {
            const float *pixel = pixels + 3 * taps[k].source;
            for (int r = 0; r < count; r++, pixel += stride) {
                for (int c = 0; c < 3; c++) {
                    float product = pixel[c] * taps[k].weight;
                    total[r][c] = total[r][c] + product;
                }
            }
        }
        for (int r = 0; r < count; r++) {
            float *row = rows + (size_t)r * 4 * target_width + 4 * target;
            row[0] = total[r][0]; row[1] = total[r][1]; row[2] = total[r][2]; row[3] = 0.0f;
        }
#endif
    }
}

#if !defined(__SSE2__)
static unsigned char to_byte(float value)
{
    long rounded = lrintf(value);  /* the current rounding mode: half to even */
    return (unsigned char)(rounded < 0 ? 0 : rounded > 255 ? 255 : rounded);
}
#endif

/* The whole resize; 0 on success, -1 when memory ran out. */
static int area_resize(const unsigned char *source, int width, int height, unsigned char *target,
                       int target_width, int target_height)
{
    double scale_x = 1.0 / ((double)target_width / width);
    double scale_y = 1.0 / ((double)target_height / height);
    Tap *columns = malloc(sizeof(Tap) * 2 * (size_t)width);
    Tap *rows = malloc(sizeof(Tap) * 2 * (size_t)height);
    float *across = malloc(sizeof(float) * 4 * BLOCK * (size_t)target_width);
    float *sums = malloc(sizeof(float) * 4 * (size_t)target_width);
    float *pixels = malloc(sizeof(float) * BLOCK * ((size_t)width * 3 + 1));
    if (!columns || !rows || !across || !sums || !pixels) {
        free(columns); free(rows); free(across); free(sums); free(pixels);
        return -1;
    }
    int column_count = area_taps(width, target_width, scale_x, columns);
    int row_count = area_taps(height, target_height, scale_y, rows);
    int lanes = 4 * target_width, block_first = 0, block_count = 0;
    for (int j = 0; j < row_count; j++) {
        int target_row = rows[j].target, source_row = rows[j].source;
        if (source_row >= block_first + block_count) {  /* rows come in order, some twice */
            block_first = source_row;
            block_count = height - source_row < BLOCK ? height - source_row : BLOCK;
            sum_across(source, width, block_first, block_count, columns, column_count,
                       target_width, across, pixels);
        }
        const float *summed = across + (size_t)(source_row - block_first) * lanes;
        float beta = rows[j].weight;
        if (j == 0 || rows[j - 1].target != target_row) {
            for (int i = 0; i < lanes; i++)
                sums[i] = beta * summed[i];
        } else {
            for (int i = 0; i < lanes; i++) {
                float product = beta * summed[i];
                sums[i] = sums[i] + product;
            }
        }
        if (j + 1 == row_count || rows[j + 1].target != target_row) {
            unsigned char *out = target + (size_t)target_row * target_width * 3;
            for (int x = 0; x < target_width; x++) {
#if defined(__SSE2__)
                /* rounded half to even (the default MXCSR mode, as lrintf), clamped to 0-255 */
                __m128i ints = _mm_cvtps_epi32(_mm_loadu_ps(sums + 4 * x));
                __m128i words = _mm_packs_epi32(ints, ints);
                int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));
                out[3 * x] = (unsigned char)bytes;
                out[3 * x + 1] = (unsigned char)(bytes >> 8);
                out[3 * x + 2] = (unsigned char)(bytes >> 16);
#else
                out[3 * x] = to_byte(sums[4 * x]);
                out[3 * x + 1] = to_byte(sums[4 * x + 1]);
                out[3 * x + 2] = to_byte(sums[4 * x + 2]);
#endif
            }
        }
    }
    free(columns); free(rows); free(across); free(sums); free(pixels);
    return 0;
}

static PyObject *resize(PyObject *self, PyObject *args)
{
    Py_buffer source, target;
    int width, height, target_width, target_height;
    if (!PyArg_ParseTuple(args, "y*iiw*ii", &source, &width, &height, &target, &target_width,
                          &target_height))
        return NULL;
    PyObject *result = NULL;
    if (width < 1 || height < 1 || target_width < 1 || target_height < 1
            || target_width > width || target_height > height) {
        PyErr_SetString(PyExc_ValueError, "resize: sizes must be positive and shrink");
    } else if (source.len != (Py_ssize_t)width * height * 3
               || target.len != (Py_ssize_t)target_width * target_height * 3) {
        PyErr_SetString(PyExc_ValueError, "resize: buffers must hold height x width x 3 bytes");
    } else {
        int failed;
        Py_BEGIN_ALLOW_THREADS
        failed = area_resize(source.buf, width, height, target.buf, target_width, target_height);
        Py_END_ALLOW_THREADS
        if (failed)
            PyErr_NoMemory();
        else
            result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&source);
    PyBuffer_Release(&target);
    return result;
}

static PyMethodDef methods[] = {
    {"resize", resize, METH_VARARGS,
     "resize(src, width, height, dst, dst_width, dst_height): cv2.INTER_AREA's shrink of a "
     "height x width x 3 uint8 image into dst"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_area", NULL, -1, methods};

PyMODINIT_FUNC PyInit__area(void) { return PyModule_Create(&module); }
