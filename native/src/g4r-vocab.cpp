// g4r-vocab.cpp - the tokenizer: tokenize, detokenize, token pieces, special tokens.
#include "g4r-impl.h"

#include <climits>

using namespace g4r;

extern "C" {

g4r_status g4r_model_special_token(g4r_model *model, int32_t which, int32_t *token) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!token) fail(G4R_ERR_INVALID_ARGUMENT, "token is NULL");
    const llama_vocab *v = model->vocab;
    switch (which) {
        case G4R_TOKEN_BOS: *token = llama_vocab_bos(v); break;
        case G4R_TOKEN_EOS: *token = llama_vocab_eos(v); break;
        case G4R_TOKEN_EOT: *token = llama_vocab_eot(v); break;
        case G4R_TOKEN_SEP: *token = llama_vocab_sep(v); break;
        case G4R_TOKEN_PAD: *token = llama_vocab_pad(v); break;
        case G4R_TOKEN_MASK: *token = llama_vocab_mask(v); break;
        case G4R_TOKEN_NL: *token = llama_vocab_nl(v); break;
        default: fail(G4R_ERR_INVALID_ARGUMENT, "unknown special token kind " + std::to_string(which));
    }
    if (*token < 0) *token = -1;
    return G4R_OK;
    G4R_GUARD_END
}

int32_t g4r_model_token_is_eog(g4r_model *model, int32_t token) {
    try {
        if (!model || token < 0 || token >= llama_vocab_n_tokens(model->vocab)) return 0;
        return llama_vocab_is_eog(model->vocab, token) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

g4r_status g4r_tokenize(g4r_model *model, const char *text, int32_t text_len, int32_t add_special,
                        int32_t parse_special, int32_t *tokens, int32_t n_tokens_max,
                        int32_t *n_tokens) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_tokens || (!text && text_len > 0) || text_len < 0 || n_tokens_max < 0)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid tokenize arguments");
    int32_t n = llama_tokenize(model->vocab, text ? text : "", text_len, tokens, n_tokens_max,
                               add_special != 0, parse_special != 0);
    if (n == INT32_MIN) fail(G4R_ERR_CONTEXT_OVERFLOW, "text too long to tokenize");
    if (n < 0) {
        *n_tokens = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "token buffer too small");
    }
    *n_tokens = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_token_to_piece(g4r_model *model, int32_t token, int32_t special, char *buf,
                              int32_t buf_size, int32_t *n_bytes) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_bytes || buf_size < 0) fail(G4R_ERR_INVALID_ARGUMENT, "invalid arguments");
    if (token < 0 || token >= llama_vocab_n_tokens(model->vocab))
        fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(token) + " is outside the vocabulary");
    int32_t n = llama_token_to_piece(model->vocab, token, buf, buf_size, 0, special != 0);
    if (n < 0) {
        *n_bytes = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "piece buffer too small");
    }
    *n_bytes = n;
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_detokenize(g4r_model *model, const int32_t *tokens, int32_t n_tokens,
                          int32_t special, char *buf, int32_t buf_size, int32_t *n_bytes) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!n_bytes || n_tokens < 0 || (!tokens && n_tokens > 0) || buf_size < 0)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid detokenize arguments");
    int32_t nv = llama_vocab_n_tokens(model->vocab);
    for (int32_t i = 0; i < n_tokens; ++i)
        if (tokens[i] < 0 || tokens[i] >= nv)
            fail(G4R_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
    int32_t n = llama_detokenize(model->vocab, tokens, n_tokens, buf, buf_size, false, special != 0);
    if (n < 0) {
        *n_bytes = -n;
        fail(G4R_ERR_BUFFER_TOO_SMALL, "text buffer too small");
    }
    *n_bytes = n;
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
