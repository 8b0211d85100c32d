// The generation loop (infer/generation.h): a sequence's stop rules and penalties, the loop's
// tokens against a plain full-forward greedy reference, early stops from the stream callback;
// and the trainer's sample (train/sample.h) in a char tokenizer whose ids are not bytes.
#include <gtest/gtest.h>

#include <algorithm>

#include "infer/generation.h"
#include "model/model.h"
#include "test_models.h"
#include "text/tokenizer.h"
#include "train/sample.h"

using namespace t6;

namespace {

// test_models.h's tiny TPA model (random weights, so the logits are well apart) with `vocab` ids.
std::unique_ptr<Model> random_model(int vocab, unsigned seed) {
    ModelConfig c = test::tiny_test_config(AttentionKind::tpa);
    c.vocab_size = vocab;
    auto m = std::make_unique<Model>(c);
    test::randomize_weights(*m, seed);
    return m;
}

// Greedy tokens by recomputing the full forward pass for every token (no cache), over the first
// `vocab` logits.
std::vector<int32_t> reference_greedy(Model& m, std::vector<int32_t> ctx, int n, int vocab) {
    const int V = m.config().vocab_size;
    std::vector<int32_t> out;
    for (int i = 0; i < n; i++) {
        const int T = int(ctx.size());
        m.forward(ctx.data(), nullptr, 1, T);
        const float* last = m.logits() + size_t(T - 1) * size_t(V);
        const int32_t next = int32_t(std::max_element(last, last + vocab) - last);
        ctx.push_back(next);
        out.push_back(next);
    }
    return out;
}

GenerationParams greedy(int max_tokens, int32_t eos = -1) {
    GenerationParams p;
    p.sampling.temperature = 0;
    p.max_tokens = max_tokens;
    p.eos = eos;
    return p;
}

TEST(SequenceSampler, EndOfTextStopsUncountedAndLengthCounts) {
    const std::vector<float> logits = {0.f, 3.f, 1.f, 2.f};
    SequenceSampler eos(greedy(5, /*eos=*/1), 4);
    const SequenceSampler::Pick a = eos.next(logits.data());
    EXPECT_EQ(a.token, 1);
    EXPECT_EQ(a.finish, Finish::eos);
    EXPECT_EQ(eos.generated(), 0);
    EXPECT_TRUE(eos.done());

    SequenceSampler two(greedy(2), 4);
    EXPECT_EQ(two.next(logits.data()).finish, Finish::none);
    const SequenceSampler::Pick b = two.next(logits.data());
    EXPECT_EQ(b.token, 1);
    EXPECT_EQ(b.finish, Finish::length);
    EXPECT_EQ(two.generated(), 2);
    EXPECT_TRUE(two.done());
    EXPECT_TRUE(SequenceSampler(greedy(0), 4).done());
}

TEST(SequenceSampler, PenaltiesAndBiasChangeThePick) {
    const std::vector<float> logits = {0.f, 3.f, 1.f, 2.5f};
    GenerationParams p = greedy(4);
    p.frequency_penalty = 1.0f;  // token 1 drops to 2 after one use: 3 (2.5) wins
    SequenceSampler s(p, 4);
    EXPECT_EQ(s.next(logits.data()).token, 1);
    EXPECT_EQ(s.next(logits.data()).token, 3);
    GenerationParams q = greedy(1);
    q.logit_bias = {{1, -100.f}};  // banned
    EXPECT_EQ(SequenceSampler(q, 4).next(logits.data()).token, 3);
    // Only the first `vocab` ids can be picked.
    EXPECT_EQ(SequenceSampler(greedy(1), 1).next(logits.data()).token, 0);
}

TEST(Generate, GreedyEqualsFullForwardAndStreamsEveryToken) {
    auto m = random_model(48, 7);
    const std::vector<int32_t> prompt = {3, 9, 27, 1, 40};
    const int n = 12;
    Decoder dec(*m, 1, int(prompt.size()) + n, CacheType::f32);
    SequenceSampler seq(greedy(n), 40);
    std::vector<int32_t> streamed;
    GenerationHooks hooks;
    hooks.on_token = [&](int32_t t) {
        streamed.push_back(t);
        return true;
    };
    hooks.time_steps = true;
    const GenerationResult r = generate(dec, 0, prompt, seq, hooks);
    EXPECT_EQ(r.finish, Finish::length);
    EXPECT_EQ(r.ids, reference_greedy(*m, prompt, n, 40));
    EXPECT_EQ(streamed, r.ids);
    EXPECT_EQ(r.step_seconds.size(), size_t(n - 1));  // no step after the last token
    EXPECT_EQ(dec.cache().length(0), int(prompt.size()) + n - 1);
}

TEST(Generate, CallbackStopsAndEndOfTextEnds) {
    auto m = random_model(48, 8);
    const std::vector<int32_t> prompt = {5, 6, 7};
    const std::vector<int32_t> ref = reference_greedy(*m, prompt, 6, 48);
    {
        Decoder dec(*m, 1, 16, CacheType::f32);
        SequenceSampler seq(greedy(6), 48);
        GenerationHooks hooks;
        hooks.on_token = [](int32_t) { return false; };
        const GenerationResult r = generate(dec, 0, prompt, seq, hooks);
        EXPECT_EQ(r.finish, Finish::stopped);
        EXPECT_EQ(r.ids, std::vector<int32_t>(ref.begin(), ref.begin() + 1));
    }
    {
        // The third greedy token as end-of-text: two tokens, then eos (not in ids). (When the
        // reference repeats that token earlier, the loop stops there: compare up to it.)
        const auto first = std::find(ref.begin(), ref.end(), ref[2]);
        Decoder dec(*m, 1, 16, CacheType::f32);
        SequenceSampler seq(greedy(6, ref[2]), 48);
        const GenerationResult r = generate(dec, 0, prompt, seq);
        EXPECT_EQ(r.finish, Finish::eos);
        EXPECT_EQ(r.ids, std::vector<int32_t>(ref.begin(), first));
    }
}

// A char tokenizer of 20 characters: id i is chars[i], nothing like byte i. The sample must
// encode its prompt and decode its tokens with it (the old sampler took ids as bytes, and
// refused a vocabulary under 256).
TEST(TrainerSample, UsesTheDataTokenizer) {
    const std::string chars = "\n !,.abcdefghijklmno";
    auto tok = load_tokenizer_spec(
        {{"format", "t6-char"}, {"version", 1}, {"vocab_size", 20}, {"chars", chars}}, "test");
    ASSERT_EQ(tok->vocab_size(), 20);
    auto m = random_model(24, 9);  // the model's vocabulary padded beyond the tokenizer's
    const GreedySample s = greedy_sample(*m, *tok, "hello, abc", 10, 64);
    EXPECT_EQ(s.prompt_text, "hello, abc");
    EXPECT_EQ(s.tokens, 10);
    const std::vector<int32_t> ref = reference_greedy(*m, tok->encode("hello, abc"), 10, 20);
    EXPECT_EQ(s.text, tok->decode(ref));
    for (char ch : s.text) EXPECT_NE(chars.find(ch), std::string::npos) << int(ch);
    // An empty prompt starts from "\n".
    EXPECT_EQ(greedy_sample(*m, *tok, "", 3, 64).prompt_text, "\n");
}

}  // namespace
