/* Layer sweeps on the demo model (assets/demo): the objective text gives
 * one image per channel (or per group of channels) bound to it, a render
 * per layer has that many images and raises each image's channel above
 * its mean on the initial noise (the model run on the images, without
 * transforms), and the sheet has one row per layer with every image at
 * the place the geometry says. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/labelled_grid.h"
#include "lucidvk/render.h"
#include "optvis/grid.h"
#include "optvis/objective.h"
#include "support/demo.h"
#include "support/op_harness.h"

/* The text parses into exactly one term per image, bound to it. */
static void test_objective(void **state)
{
    const int ch[7] = {3, 4, 5, 9, 0, 12, 13};
    char *text;
    int batch;
    struct lvk_objective *o;
    assert_int_equal(lvk_sweep_objective("a/b:0", ch, 7, 1, &text, &batch), LVK_OK);
    assert_int_equal(batch, 7);
    assert_int_equal(lvk_objective_parse(text, &o), LVK_OK);
    assert_int_equal(o->nterms, 7);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(o->terms[i].kind, LVK_TERM_CHANNEL);
        assert_int_equal(o->terms[i].batch, i);
        assert_int_equal(o->terms[i].channel, ch[i]);
        assert_string_equal(o->terms[i].tensor, "a/b:0");
        assert_true(o->terms[i].weight == 1.0);
    }
    lvk_objective_destroy(o);
    free(text);
    /* Groups of 3: [3,4,5] [9,0,12] [13]. */
    assert_int_equal(lvk_sweep_objective("it's", ch, 7, 3, &text, &batch), LVK_OK);
    assert_int_equal(batch, 3);
    assert_int_equal(lvk_objective_parse(text, &o), LVK_OK);
    assert_int_equal(o->nterms, 3);
    for (int i = 0; i < 3; i++) {
        const struct lvk_term *t = &o->terms[i];
        assert_int_equal(t->kind, LVK_TERM_GROUP);
        assert_int_equal(t->batch, i);
        assert_string_equal(t->tensor, "it's");
        assert_int_equal(t->nchannels, i < 2 ? 3 : 1);
        for (int k = 0; k < t->nchannels; k++)
            assert_int_equal(t->channels[k], ch[3 * i + k]);
    }
    lvk_objective_destroy(o);
    free(text);
    assert_int_equal(lvk_sweep_objective("x", ch, 0, 1, &text, &batch), LVK_ERR_INVALID_ARG);
    const int neg[1] = {-1};
    assert_int_equal(lvk_sweep_objective("x", neg, 1, 1, &text, &batch), LVK_ERR_INVALID_ARG);
}

static void test_sweep_demo(void **state)
{
    const char *layers[2] = {"conv1_relu", "conv4_relu"};
    /* Channels the optimisation can reach from noise in both layers; many
     * of conv1_relu's are dead on every image it meets, with no gradient. */
    const int ch[4] = {1, 13, 18, 29};
    const int nl = 2, nch = 4;
    struct lvk_render_result res[2];
    float *cells = NULL;
    for (int l = 0; l < nl; l++) {
        char *text;
        int batch;
        assert_int_equal(lvk_sweep_objective(layers[l], ch, nch, 1, &text, &batch), LVK_OK);
        struct lvk_render_opts o = {.objective = text, .batch = batch, .steps = 128, .seed = 5,
                                    .redirect_steps = -1};
        lvk_test_demo_render(&o, &res[l]);
        free(text);
        const struct lvk_render_result *r = &res[l];
        assert_int_equal(r->batch, nch);
        assert_true(r->height == 28 && r->width == 28 && r->channels == 1);
        /* Each image's channel mean, on the noise and on the result. */
        struct lvk_grid_neuron units[4];
        for (int k = 0; k < nch; k++)
            units[k] = (struct lvk_grid_neuron){layers[l], ch[k]};
        double before[16], after[16];
        lvk_test_demo_units(r, r->initial, units, nch, NULL, before);
        lvk_test_demo_units(r, r->images, units, nch, NULL, after);
        for (int i = 0; i < nch; i++)
            print_message("%s channel %d: mean %.4f -> %.4f (objective %.4f -> %.4f)\n", layers[l], ch[i],
                          before[i * nch + i], after[i * nch + i], r->value_start[i], r->value_end[i]);
        for (int i = 0; i < nch; i++) {
            assert_true(after[i * nch + i] > before[i * nch + i] + 0.02);
            assert_true(r->value_end[i] > r->value_start[i]);
        }
    }
    /* The sheet: row l is layer l, column i channel i. */
    size_t one = (size_t)nch * 28 * 28;
    cells = malloc(nl * one * sizeof *cells);
    for (int l = 0; l < nl; l++)
        memcpy(cells + l * one, res[l].images, one * sizeof *cells);
    const char *cols[4] = {"1", "13", "18", "29"};
    struct lvk_labelled_grid g = {.rows = nl, .cols = nch, .c = 1, .h = 28, .w = 28, .cells = cells,
                                  .row_labels = layers, .col_labels = cols, .gutter = 2, .zoom = 3,
                                  .bg = 1.0f};
    struct lvk_image sheet;
    assert_int_equal(lvk_labelled_grid_render(&g, &sheet), LVK_OK);
    /* Row labels fit in 12 characters ("conv1_relu": 59 px); column labels
     * are one line (7 px). */
    int x0 = 2 + 59 + 2, y0 = 2 + 7 + 2;
    assert_int_equal(sheet.w, x0 + nch * (84 + 2));
    assert_int_equal(sheet.h, y0 + nl * (84 + 2));
    for (int l = 0; l < nl; l++)
        for (int i = 0; i < nch; i++)
            for (int y = 0; y < 84; y++)
                for (int x = 0; x < 84; x++)
                    assert_true(sheet.data[(size_t)(y0 + l * 86 + y) * sheet.w + x0 + i * 86 + x] ==
                                res[l].images[((size_t)i * 28 + y / 3) * 28 + x / 3]);
    lvk_image_free(&sheet);
    free(cells);
    for (int l = 0; l < nl; l++)
        lvk_render_result_free(&res[l]);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objective),
        cmocka_unit_test(test_sweep_demo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
