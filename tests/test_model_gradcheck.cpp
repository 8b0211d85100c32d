// Whole-model gradient checks for every attention kind but MLA (test_model_mla.cpp):
// Model::forward_backward against central differences of Model::forward's loss on a tiny model
// (method and tolerance: model_gradcheck.h).
#include <gtest/gtest.h>

#include "model_gradcheck.h"

using namespace t6;

namespace {

void check(const ModelConfig& c) {
    auto r = test::whole_model_gradcheck(c);
    EXPECT_GT(r.checked, 50u);
    EXPECT_LT(r.rel_error, 1e-2);
    EXPECT_LT(r.worst_tensor_rel, 2e-2) << r.worst_tensor;
}

}  // namespace

TEST(ModelGradcheck, Tpa) {
    check(test::tiny_gradcheck_config(AttentionKind::tpa));
}

TEST(ModelGradcheck, TpaKvOnly) {
    check(test::tiny_gradcheck_config(AttentionKind::tpa_kvonly));
}

TEST(ModelGradcheck, Mha) {
    check(test::tiny_gradcheck_config(AttentionKind::mha));
}

TEST(ModelGradcheck, Gqa) {
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::gqa);
    c.n_head = 4;
    c.head_dim = 4;
    c.n_kv_head = 2;  // two query heads per KV head
    check(c);
}

TEST(ModelGradcheck, Mqa) {
    check(test::tiny_gradcheck_config(AttentionKind::mqa));
}

TEST(ModelGradcheck, TpaTwoLayers) {
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::tpa);
    c.n_layer = 2;
    check(c);
}
