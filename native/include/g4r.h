/*
 * g4r.h - the C API of gpt4all-rag's native backend.
 *
 * This is the only public header of libgpt4all_rag. It is plain C, uses one prefix (g4r_),
 * passes no struct by value, and never exposes llama.cpp types: a llama.cpp upgrade changes
 * the files of src/ alone.
 *
 * Conventions
 * - Every function that can fail returns a g4r_status, or a handle that is NULL on failure.
 *   The message of the last failure on the calling thread is returned by g4r_last_error().
 * - Every allocation has its named free (g4r_model_free). Strings returned as `const char *`
 *   are owned by the library; their lifetime is documented per function.
 * - No C++ exception crosses this boundary.
 * - The library never prints. Log lines of llama.cpp and of this library are delivered to the
 *   callback installed with g4r_log_set(), or dropped when none is installed.
 * - Thread safety: functions on one g4r_model serialise on a mutex inside the handle, so
 *   threads using one handle never corrupt it. A generation model holds n_seq parallel
 *   sequences (g4r_model_load); each generating thread uses its own sequence, and their tokens
 *   are evaluated together (see "Parallel sequences" below). Two threads must not use one
 *   sequence at once (their calls would interleave; the Python layer hands out sequences).
 *   g4r_model_info() of fixed properties and g4r_model_cancel() never block. Different
 *   handles are independent.
 * - Parallel sequences (continuous batching, as llama.cpp's server does it): g4r_model_ingest
 *   only records a sequence's prompt; g4r_generate_next evaluates. A caller whose sequence
 *   has no produced token waiting runs one step for every sequence: a single llama_decode
 *   holding the last produced token of each generating sequence and, in arrival order, chunks
 *   of the prompts still to evaluate (at most the context's batch size, or its ubatch size,
 *   512, while any sequence generates, so a long prompt never stalls the others for more than
 *   one ubatch); then each sequence whose logits came out samples its next token into its own
 *   queue. A sequence runs at most 4 tokens ahead of its consumer, so a consumer that stops
 *   pulling holds only its own sequence. A failure of one sequence's sampler (a grammar that
 *   admits no token) is reported to that sequence alone. A step evaluates with the model's
 *   lock released: meanwhile g4r_generate_next returns tokens already queued for the other
 *   sequences at once, and calls that change a sequence or the cache (ingest, start, finish,
 *   score, embed, reset, set_threads) wait for it to end; the next step waits for them, so a
 *   new prompt joins at the next step boundary.
 * - Token ids are int32_t; text is UTF-8 given as pointer + length in bytes.
 */
#ifndef G4R_H
#define G4R_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define G4R_API __declspec(dllexport)
#else
#define G4R_API __attribute__((visibility("default")))
#endif

/** ABI version; bumped on every incompatible change of this header. */
#define G4R_ABI_VERSION 3

typedef enum g4r_status {
    G4R_OK = 0,
    G4R_ERR_INVALID_ARGUMENT = 1, /**< a parameter is out of range or NULL */
    G4R_ERR_IO = 2,               /**< the file cannot be opened or read */
    G4R_ERR_MODEL_LOAD = 3,       /**< the file is not a loadable GGUF model */
    G4R_ERR_CONTEXT_OVERFLOW = 4, /**< the tokens do not fit into the context window */
    G4R_ERR_DECODE = 5,           /**< llama.cpp failed to evaluate a batch */
    G4R_ERR_NOT_SUPPORTED = 6,    /**< the model cannot do this (e.g. generate with an embedding model) */
    G4R_ERR_CANCELLED = 7,        /**< g4r_model_cancel() interrupted the call */
    G4R_ERR_BUFFER_TOO_SMALL = 8, /**< the output buffer is too small; the needed size is reported */
    G4R_ERR_STATE = 9,            /**< the call is not valid in the current state */
    G4R_ERR_NOT_FOUND = 10,       /**< the key, token or device does not exist */
    G4R_ERR_GRAMMAR = 11,         /**< the grammar could not be parsed */
    G4R_ERR_INTERNAL = 12         /**< an unexpected failure (out of memory, C++ exception) */
} g4r_status;

/** Why g4r_generate_next() produced no token. */
typedef enum g4r_stop_reason {
    G4R_CONTINUE = 0,     /**< a token was produced */
    G4R_STOP_EOG = 1,     /**< the model produced an end-of-generation token (not returned) */
    G4R_STOP_LENGTH = 2   /**< the context window is full */
} g4r_stop_reason;

/** Special tokens queried by g4r_model_special_token(). */
typedef enum g4r_special_token {
    G4R_TOKEN_BOS = 0,
    G4R_TOKEN_EOS = 1,
    G4R_TOKEN_EOT = 2,
    G4R_TOKEN_SEP = 3,
    G4R_TOKEN_PAD = 4,
    G4R_TOKEN_MASK = 5,
    G4R_TOKEN_NL = 6
} g4r_special_token;

/** Flags of g4r_model_load(). */
#define G4R_LOAD_VOCAB_ONLY 1u /**< load the tokenizer and metadata only, no weights, no context */
#define G4R_LOAD_FLASH_ATTN_ON 2u  /**< always use flash attention */
#define G4R_LOAD_FLASH_ATTN_OFF 4u /**< never use flash attention (plain attention) */
#define G4R_LOAD_LLAMA_ENCODER 8u  /**< embedding models: evaluate with llama.cpp's graph, not g4r's BERT encoder */

/** An opaque handle: one model's weights, its inference context and its decoding state. */
typedef struct g4r_model g4r_model;

/**
 * Log callback.
 * @param[in] level 1 debug, 2 info, 3 warning, 4 error, 5 continuation of the previous line.
 * @param[in] text  one log fragment, UTF-8, NUL-terminated, valid only during the call.
 * @param[in] user_data the pointer given to g4r_log_set().
 * May be called from any thread that calls into the library.
 */
typedef void (*g4r_log_callback)(int32_t level, const char *text, void *user_data);

/** @return G4R_ABI_VERSION of the compiled library. Thread-safe. */
G4R_API int32_t g4r_abi_version(void);

/**
 * @return the message of the last failed call on this thread, or "" if none. The pointer is
 * owned by the library and valid until the next g4r_ call on the same thread.
 */
G4R_API const char *g4r_last_error(void);

/**
 * Install (or, with NULL, remove) the log callback for the whole process.
 * @param[in] callback  receives every log line; NULL drops them.
 * @param[in] user_data passed back to the callback unchanged.
 * Not thread-safe with respect to concurrent logging: call it before using models.
 */
G4R_API void g4r_log_set(g4r_log_callback callback, void *user_data);

/** @return a NUL-terminated description of the CPU features of the CPU backend in use (the
 *  variant ggml loaded for this CPU), then " ACCEL: name (description) |" for each accelerator
 *  backend loaded (a BLAS build: "ACCEL: BLAS (...)"); static lifetime. */
G4R_API const char *g4r_system_info(void);

/**
 * @return the x86 instruction-set extensions of the running CPU that its OS has enabled,
 *  space-separated, in Linux's /proc/cpuinfo spelling ("sse4_2 avx f16c fma avx2 bmi2
 *  avx_vnni avx512f ..."; those that decide ggml's CPU kernels, see native/src/cpu_flags.h),
 *  read with cpuid and xgetbv: the CPU's own answer, also under an emulator, where
 *  /proc/cpuinfo shows the host's. "" on other architectures. Static lifetime; thread-safe;
 *  needs no CPU backend (it works where none of ggml's CPU modules loads).
 */
G4R_API const char *g4r_cpu_flags(void);

/** @return the kernel set of g4r's BERT encoder (its attention, GELU and layer norms; also its
 *  products where g4r_encoder_products() says "g4r"): the first of g4r_encoder_kernel_sets(),
 *  or the one the environment variable GPT4ALL_RAG_ENCODER_KERNELS names where this CPU runs it
 *  (read once, at the first call of this or of an embedding); static lifetime; thread-safe. */
G4R_API const char *g4r_encoder_kernels(void);

/** @return the kernel sets of g4r's BERT encoder this CPU runs, best first, separated by
 *  spaces, from g4r_cpu_flags(): "avx512" (AVX-512F with AVX2, FMA and F16C: products 16 lanes
 *  wide, the other kernels AVX2's), "avx2" (AVX2, FMA and F16C), "baseline" (plain C++, which
 *  leaves the products to ggml; always last); static lifetime; thread-safe. */
G4R_API const char *g4r_encoder_kernel_sets(void);

/** @return who multiplies the BERT encoder's F16, F32 and Q8_0 product weights on this CPU:
 *  "g4r" (its own product, in g4r_encoder_kernels()'s set: where that set has one and the CPU
 *  has no AVX-512) or "ggml" (ggml's mul_mat). The environment variable
 *  GPT4ALL_RAG_ENCODER_PRODUCTS = "g4r" or "ggml" overrides the choice ("g4r" only where the
 *  set has a product kernel), read once; static lifetime; thread-safe. */
G4R_API const char *g4r_encoder_products(void);

/** @return the CPU's brand string from cpuid (e.g. "AMD EPYC 9R14 96-Core Processor"), or ""
 *  where it has none; static lifetime; thread-safe. */
G4R_API const char *g4r_cpu_brand(void);

/** @return the number of GPU devices available to this build (0 on a CPU-only build). */
G4R_API int32_t g4r_gpu_count(void);

/**
 * Describe one GPU device.
 * @param[in]  index   0 <= index < g4r_gpu_count().
 * @param[out] name    receives the device name (e.g. "CUDA0"), static lifetime.
 * @param[out] description receives the human-readable name (e.g. "NVIDIA L4"), static lifetime.
 * @param[out] backend receives the backend name in lower case (e.g. "cuda"), static lifetime.
 * @return G4R_OK or G4R_ERR_NOT_FOUND.
 */
G4R_API g4r_status g4r_gpu_info(int32_t index, const char **name, const char **description,
                                const char **backend);

/**
 * Load a GGUF model and create its inference context.
 * @param[in] path        file path, UTF-8, NUL-terminated.
 * @param[in] n_ctx       context window in tokens; 0 uses the model's training context. For
 *                        embedding models the window is min(n_ctx, training context).
 * @param[in] n_gpu_layers layers to offload to the GPU; ignored when device is NULL or "cpu".
 * @param[in] device      NULL or "cpu" for the CPU; "gpu" for the first GPU; a backend name
 *                        ("cuda", "vulkan", "metal") for its first GPU; or a device name or
 *                        description as reported by g4r_gpu_info().
 * @param[in] n_threads   CPU threads for evaluation; <= 0 picks min(logical CPUs, 8).
 * @param[in] flags       0, or G4R_LOAD_VOCAB_ONLY, or one of G4R_LOAD_FLASH_ATTN_ON /
 *                        G4R_LOAD_FLASH_ATTN_OFF (both: G4R_ERR_INVALID_ARGUMENT), and/or
 *                        G4R_LOAD_LLAMA_ENCODER.
 * @param[in] n_seq       parallel sequences of a generation context, 1..64 (ignored by
 *                        embedding models). Each sequence has the whole window of n_ctx tokens
 *                        in a KV-cache stream of its own (for n_seq > 1 rounded up to a
 *                        multiple of 256 tokens; G4R_PROP_N_CTX reports it), so the KV cache
 *                        takes n_seq times the memory of one sequence.
 * @return a handle to free with g4r_model_free(), or NULL (see g4r_last_error(); the status is
 *         G4R_ERR_IO, G4R_ERR_MODEL_LOAD, G4R_ERR_NOT_FOUND for an unknown device or when
 *         no CPU backend module beside the library loads, or G4R_ERR_INVALID_ARGUMENT,
 *         available from g4r_last_status()).
 * Embedding models (GGUF key <arch>.pooling_type other than none) get an embedding context;
 * all others get a generation context. An embedding model of architecture "bert" with mean or
 * CLS pooling, loaded for the CPU of a build without a BLAS module, is evaluated by g4r's own
 * BERT encoder graph (attention per text rather than over a masked pack of texts;
 * G4R_PROP_ENCODER), unless G4R_LOAD_LLAMA_ENCODER is given.
 *
 * Attention, when no G4R_LOAD_FLASH_ATTN_* flag is given: embedding contexts, contexts on a
 * GPU, contexts of parallel sequences (n_seq > 1) and every context of a build with a BLAS
 * backend (G4R_BLAS=mkl) use flash attention (llama.cpp's automatic choice).
 * - With 8 sequences streaming through the server (bench/bench_server.py, SmolLM2, 2 AVX-512
 *   cores, 2 interleaved rounds) flash attention gave 1.17x the aggregate tok/s of plain
 *   attention: each sequence's attention reads only its own cells, which plain attention
 *   computes in full, masked, up to the 256-cell padding.
 * - With the BLAS backend, plain attention's products over the F16 cache go to BLAS, which
 *   converts the cache to F32 for each: a 256-token chat prompt's first token came after
 *   0.56-0.71 s with plain attention and 0.36-0.55 s with flash attention; generation speed
 *   was the same.
 * Otherwise (one sequence, no BLAS backend, on the CPU) a context uses plain attention when
 * its score matrix, n_ubatch (512) x n_ctx x n_head x 4 bytes, is at most
 * 128 MiB (SmolLM2 at n_ctx 2,048: 36 MiB), and flash attention above that. Measured with
 * llama-bench on 2 AVX2 cores, 256 and 1,024 tokens deep, plain attention generated SmolLM2-135M
 * (9 heads of 64) 18-34% faster and Gemma 3 270M (4 heads of 256) at the same speed; prompt
 * speed was within the machine's noise. Flash attention needs no score matrix. Both compute the
 * same attention up to rounding; see G4R_PROP_FLASH_ATTN.
 */
G4R_API g4r_model *g4r_model_load(const char *path, int32_t n_ctx, int32_t n_gpu_layers,
                                  const char *device, int32_t n_threads, uint32_t flags,
                                  int32_t n_seq);

/** @return the status of the last failed call on this thread (G4R_OK if none). */
G4R_API g4r_status g4r_last_status(void);

/** Free a model and everything it owns. NULL is allowed. The handle must not be in use. */
G4R_API void g4r_model_free(g4r_model *model);

/** Integer properties of a loaded model, queried by g4r_model_info(). */
typedef enum g4r_model_property {
    G4R_PROP_N_CTX = 0,         /**< context window of one sequence, tokens */
    G4R_PROP_N_CTX_TRAIN = 1,   /**< training context of the model, tokens */
    G4R_PROP_N_VOCAB = 2,       /**< vocabulary size */
    G4R_PROP_N_EMBD = 3,        /**< embedding dimension (output of g4r_model_embed) */
    G4R_PROP_IS_EMBEDDING = 4,  /**< 1 for an embedding model, 0 otherwise */
    G4R_PROP_ADD_BOS = 5,       /**< 1 if the tokenizer adds BOS */
    G4R_PROP_ADD_EOS = 6,       /**< 1 if the tokenizer adds EOS (BERT's [SEP]) */
    G4R_PROP_N_PAST = 7,        /**< tokens currently held in the KV cache (all sequences) */
    G4R_PROP_N_DECODED = 8,     /**< total tokens evaluated since load (prompt and generated) */
    G4R_PROP_N_THREADS = 9,     /**< CPU threads in use */
    G4R_PROP_N_BATCH = 10,      /**< maximum tokens per evaluation (embedding: all sequences of one batch) */
    G4R_PROP_N_SEQ_MAX = 11,    /**< embedding: sequences per batch; generation: n_seq */
    G4R_PROP_POOLING = 12,      /**< llama.cpp pooling type: 0 none, 1 mean, 2 cls, 3 last, 4 rank */
    G4R_PROP_N_PARAMS = 13,     /**< number of parameters */
    G4R_PROP_FLASH_ATTN = 14,   /**< 0: plain attention; 1: flash attention requested (llama.cpp
                                     falls back to plain where a backend cannot run it) */
    G4R_PROP_N_EVALS = 15,      /**< llama_decode calls since load (one per step of all sequences);
                                     embedding: evaluations of packed texts */
    G4R_PROP_ENCODER = 16       /**< embedding: 1 when g4r's BERT encoder evaluates, 0 for llama.cpp's graph */
} g4r_model_property;

/**
 * Read an integer property.
 * @param[out] value receives the property.
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT (unknown property) or G4R_ERR_STATE (vocab-only).
 */
G4R_API g4r_status g4r_model_info(g4r_model *model, int32_t property, int64_t *value);

/**
 * Name of the backend and device the model runs on.
 * @param[out] backend "cpu", "cuda", "vulkan", "metal", ...; static lifetime.
 * @param[out] device  device description, or NULL on the CPU; static lifetime.
 */
G4R_API g4r_status g4r_model_device(g4r_model *model, const char **backend, const char **device);

/**
 * Convert a JSON schema into a GBNF grammar (start symbol "root") for g4r_generate_start(),
 * with llama.cpp's converter (common/json-schema-to-grammar.cpp). It covers objects
 * (properties, required, additionalProperties), arrays (items, prefixItems, minItems,
 * maxItems), strings (enum, const, pattern, minLength, maxLength, formats date, time,
 * date-time, uuid), integers (minimum, maximum, exclusiveMinimum, exclusiveMaximum), numbers,
 * booleans, null, anyOf/oneOf/allOf and local $ref. String rules never admit a raw control
 * character (U+0000-U+001F) or an invalid escape. A regex "pattern" the converter cannot
 * enforce (not anchored with ^...$, lookarounds, ...) admits any string, and the conversion
 * logs a warning (level 3) through the log callback saying so. Needs no model. Thread-safe
 * (conversions are serialised).
 * @param[in]  schema_json the schema as JSON text, UTF-8, NUL-terminated.
 * @param[out] buf         receives up to buf_size-1 bytes of the grammar and a NUL.
 * @param[out] n_needed    receives the grammar's length in bytes, without the NUL.
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT (not JSON, or a schema the converter rejects: the
 *         message says why), or G4R_ERR_BUFFER_TOO_SMALL (call again with n_needed+1).
 */
G4R_API g4r_status g4r_json_schema_to_grammar(const char *schema_json, char *buf, size_t buf_size,
                                              size_t *n_needed);

/**
 * Format a chat request with llama.cpp's chat layer (common/chat.cpp): the model family's own
 * tool-call format, reasoning markers and output parser for this template.
 * @param[in]  chat_template NULL or "" for the GGUF's tokenizer.chat_template, else a Jinja
 *                           template source to use instead (compiled once per handle and cached).
 * @param[in]  request_json  a JSON object: "messages" (OpenAI chat messages, with tool_calls and
 *                           tool results), optional "tools" (OpenAI function tools),
 *                           "tool_choice" ("auto" | "required" | "none"), "parallel_tool_calls"
 *                           (bool, default true), "enable_thinking" (bool, default true),
 *                           "add_generation_prompt" (bool, default true), "json_schema".
 * @param[out] result_json   receives a JSON object to free with g4r_string_free(): "prompt"
 *                           (llama.cpp's own rendering), "format" (name), "format_id",
 *                           "generation_prompt", "grammar", "grammar_lazy", "grammar_triggers"
 *                           ([{"type", "value", "token"}]), "preserved_tokens",
 *                           "additional_stops", "parser" (for g4r_chat_parse),
 *                           "supports_thinking", "thinking_start_tag", "thinking_end_tags",
 *                           "trigger_patterns" and "trigger_tokens" (the grammar's triggers
 *                           as g4r_generate_start() takes them),
 *                           "caps" (what the template handles: "supports_tools",
 *                           "supports_tool_calls", "supports_system_role", ...).
 * @return G4R_OK, G4R_ERR_NOT_FOUND (no template), G4R_ERR_INVALID_ARGUMENT (bad JSON, a
 *         template llama.cpp cannot read or apply; the message says why).
 * Thread-safe; does not wait for a running evaluation. Works on vocab-only handles.
 */
G4R_API g4r_status g4r_chat_apply(g4r_model *model, const char *chat_template,
                                  const char *request_json, char **result_json);

/**
 * Parse a model's reply with the chat format found by g4r_chat_apply(): content, reasoning
 * (<think>...</think> and the other families' markers) and tool calls, several per reply where
 * the model emits several. Needs no model.
 * @param[in]  parser_json  a JSON object with "format_id", "parser" and "generation_prompt" as
 *                          g4r_chat_apply() returned them, and optional "parse_tool_calls"
 *                          (default true). Reasoning is always split out.
 * @param[in]  text, text_len the reply (UTF-8, length in bytes).
 * @param[in]  is_partial   1 while the reply is still being generated (a cut-off marker or tool
 *                          call is then not an error).
 * @param[out] result_json  receives {"content", "reasoning_content", "tool_calls": [{"name",
 *                          "arguments" (JSON text), "id"}]}; free it with g4r_string_free().
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT, G4R_ERR_GRAMMAR (a complete reply that does not
 *         follow the format). Thread-safe.
 */
G4R_API g4r_status g4r_chat_parse(const char *parser_json, const char *text, size_t text_len,
                                  int32_t is_partial, char **result_json);

/** Free a string returned by g4r_chat_apply() or g4r_chat_parse(). NULL is allowed. */
G4R_API void g4r_string_free(char *s);

/**
 * Read a GGUF metadata value as a string (numbers and booleans are formatted).
 * @param[in]  key      e.g. "general.name".
 * @param[out] buf      receives up to buf_size-1 bytes and a NUL.
 * @param[out] n_needed receives the length of the value in bytes, without the NUL.
 * @return G4R_OK, G4R_ERR_NOT_FOUND, or G4R_ERR_BUFFER_TOO_SMALL (call again with n_needed+1).
 */
G4R_API g4r_status g4r_model_meta(g4r_model *model, const char *key, char *buf, size_t buf_size,
                                  size_t *n_needed);

/**
 * The chat template stored in the GGUF (tokenizer.chat_template).
 * @param[out] tmpl NUL-terminated Jinja source owned by the model, valid until g4r_model_free.
 * @return G4R_OK or G4R_ERR_NOT_FOUND.
 */
G4R_API g4r_status g4r_model_chat_template(g4r_model *model, const char **tmpl);

/**
 * Id of a special token.
 * @param[in]  which a g4r_special_token.
 * @param[out] token the id, or -1 when the model has none.
 */
G4R_API g4r_status g4r_model_special_token(g4r_model *model, int32_t which, int32_t *token);

/** @return 1 if the token ends generation (EOS, EOT, <|im_end|>, ...), else 0. */
G4R_API int32_t g4r_model_token_is_eog(g4r_model *model, int32_t token);

/**
 * Tokenize UTF-8 text.
 * @param[in]  text, text_len   the text (not NUL-terminated; length in bytes).
 * @param[in]  add_special      1 to add BOS/EOS as the model's tokenizer config says.
 * @param[in]  parse_special    1 to turn special-token text (e.g. "<|im_start|>") into its id.
 * @param[out] tokens           int32_t[n_tokens_max].
 * @param[out] n_tokens         number of tokens written, or needed on G4R_ERR_BUFFER_TOO_SMALL.
 */
G4R_API g4r_status g4r_tokenize(g4r_model *model, const char *text, int32_t text_len,
                                int32_t add_special, int32_t parse_special, int32_t *tokens,
                                int32_t n_tokens_max, int32_t *n_tokens);

/**
 * Text of one token (bytes; may be part of a UTF-8 sequence).
 * @param[in]  special 1 to render special tokens as their text, 0 to render them as "".
 * @param[out] buf     receives the bytes, no NUL.
 * @param[out] n_bytes bytes written, or needed on G4R_ERR_BUFFER_TOO_SMALL.
 */
G4R_API g4r_status g4r_token_to_piece(g4r_model *model, int32_t token, int32_t special,
                                      char *buf, int32_t buf_size, int32_t *n_bytes);

/**
 * Turn tokens back into text (the inverse of g4r_tokenize).
 * @param[out] n_bytes bytes written (no NUL), or needed on G4R_ERR_BUFFER_TOO_SMALL.
 */
G4R_API g4r_status g4r_detokenize(g4r_model *model, const int32_t *tokens, int32_t n_tokens,
                                  int32_t special, char *buf, int32_t buf_size, int32_t *n_bytes);

/** Set the number of CPU threads (> 0) for all later evaluation. */
G4R_API g4r_status g4r_model_set_threads(g4r_model *model, int32_t n_threads);

/**
 * Make sequence `seq` of the KV cache hold exactly `tokens`. The longest common prefix of its
 * cached tokens and `tokens` is kept; the rest is recorded, and evaluated in chunks of n_batch
 * by the steps of g4r_generate_next (see "Parallel sequences"). When `tokens` is the prompt of
 * the sequence's previous call (the cache may hold what was generated after it), nothing is
 * evaluated: the next generation starts from the logits saved then, so the same prompt gives
 * the same greedy output. Otherwise the last token is always evaluated, so its logits are
 * fresh. Ends the sequence's active generation.
 * @param[in]  seq      0 <= seq < n_seq.
 * @param[in]  tokens   int32_t[n_tokens], n_tokens >= 1.
 * @param[in]  n_batch  prompt tokens per step, >= 1 (clamped to the context's batch size).
 * @param[out] n_reused receives the number of cached tokens that were kept, n_tokens when
 *                      nothing is evaluated (may be NULL).
 * @return G4R_OK, G4R_ERR_CONTEXT_OVERFLOW (n_tokens > the window; the cache is left
 *         unchanged), G4R_ERR_INVALID_ARGUMENT (a token id outside the vocabulary, a bad seq)
 *         or G4R_ERR_NOT_SUPPORTED (embedding model). Evaluation errors are reported by
 *         g4r_generate_next; afterwards the sequence holds a prefix of `tokens`.
 */
G4R_API g4r_status g4r_model_ingest(g4r_model *model, int32_t seq, const int32_t *tokens,
                                    int32_t n_tokens, int32_t n_batch, int32_t *n_reused);

/** Drop everything from the KV cache (every sequence) and end every generation. */
G4R_API g4r_status g4r_model_reset(g4r_model *model);

/** The largest n_top that g4r_generate_logprobs() accepts (OpenAI's top_logprobs limit). */
#define G4R_MAX_TOP_LOGPROBS 20

/** g4r_sampler_params.seed that asks for a fresh random seed at each g4r_generate_start
 *  (llama.h's LLAMA_DEFAULT_SEED: the draw is then not reproducible). */
#define G4R_DEFAULT_SEED 0xFFFFFFFFu

/**
 * How a generation samples and when it stops: the parameters of g4r_generate_start(). Fill
 * one with g4r_sampler_default_params() and set the fields to change, so that a field added
 * later gets its default. Sampling follows llama.cpp's order: grammar, repetition penalty over
 * the last repeat_last_n tokens of the sequence (prompt included), then (temp 0) greedy, or
 * top_k, top_p, min_p, temperature and a seeded draw. g4r_generate_start checks every field
 * (G4R_ERR_INVALID_ARGUMENT names the first one out of range and its value) and copies what it
 * needs: the strings and arrays may be freed when it returns.
 */
typedef struct g4r_sampler_params {
    float temp;            /**< temperature, finite, >= 0; 0 means greedy decoding. Default 0.7 */
    int32_t top_k;         /**< keep the k most likely tokens, >= 0; 0 disables. Default 40 */
    float top_p;           /**< nucleus: keep the most likely tokens whose probabilities add up to
                                top_p, in (0, 1]; 1 disables. Default 0.4 */
    float min_p;           /**< drop tokens less likely than min_p times the most likely one,
                                in [0, 1]; 0 disables. Default 0 */
    float repeat_penalty;  /**< > 0 (finite); a logit l of a token among the last repeat_last_n
                                becomes l / repeat_penalty if l > 0, else l * repeat_penalty
                                (llama.cpp's rule); 1 disables. Default 1.18 */
    int32_t repeat_last_n; /**< tokens the penalty looks back over, >= -1: 0 disables, -1 means
                                the whole window (G4R_PROP_N_CTX). Default 64 */
    uint32_t seed;         /**< seed of the random draw (same seed, prompt and parameters: same
                                output); G4R_DEFAULT_SEED draws a fresh one. Default
                                G4R_DEFAULT_SEED */
    const char *grammar;   /**< NULL or "" for none, or a GBNF grammar (UTF-8, NUL-terminated)
                                whose start symbol is "root". Default NULL */
    const char *const *trigger_patterns; /**< const char *[n_trigger_patterns], see below */
    int32_t n_trigger_patterns;          /**< >= 0. Default 0 */
    const int32_t *trigger_tokens;       /**< int32_t[n_trigger_tokens], see below */
    int32_t n_trigger_tokens;            /**< >= 0. Default 0 */
    /* A lazy grammar: with no trigger (0 and 0) the grammar constrains every token. Otherwise
     * (only with a grammar) it constrains nothing until the output matches one of the trigger
     * patterns (NUL-terminated regular expressions matched from the start of the generated
     * text; the grammar then reads from the first match group) or a trigger token is produced
     * (the grammar reads from that token on). This is how llama.cpp constrains tool calls that
     * a model may or may not make (g4r_chat_apply returns "trigger_patterns" and
     * "trigger_tokens" for its "grammar" when "grammar_lazy"). A non-NULL array is needed
     * when its count is > 0. */
    int32_t n_predict;     /**< the most tokens the sequence produces, -1 (until the window is
                                full) or >= 1; a consumer that stops earlier wastes up to 4
                                evaluations. Default -1 */
    int32_t n_logprobs;    /**< -1, or 0..G4R_MAX_TOP_LOGPROBS: record each produced token's
                                log-probability and that many alternatives
                                (g4r_generate_logprobs). Default -1 */
} g4r_sampler_params;

/**
 * Fill `params` with the defaults written on each field of g4r_sampler_params (those of the
 * Python SDK's SamplingParams, but for n_predict: no limit). NULL is ignored. Thread-safe.
 * @param[out] params the struct to fill.
 */
G4R_API void g4r_sampler_default_params(g4r_sampler_params *params);

/**
 * Start pull-style generation on sequence `seq` after g4r_model_ingest.
 * @param[in] seq    0 <= seq < n_seq.
 * @param[in] params how to sample and when to stop (g4r_sampler_params), checked here; read
 *                   during the call only.
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT (a field out of range: the message names it; also
 *         triggers without a grammar, a NULL params, a bad seq), G4R_ERR_GRAMMAR (the grammar
 *         does not parse; the sequence is then left with no active generation), G4R_ERR_STATE
 *         (nothing ingested), G4R_ERR_NOT_SUPPORTED (embedding model).
 */
G4R_API g4r_status g4r_generate_start(g4r_model *model, int32_t seq, const g4r_sampler_params *params);

/**
 * Take the next token of sequence `seq`, running steps (see "Parallel sequences") until it has
 * one. A produced token is evaluated by the step after it, so a caller that stops after a
 * token pays nothing more for it than the read-ahead of other callers' steps.
 * @param[out] token   the token id (valid when *reason == G4R_CONTINUE).
 * @param[out] buf     receives the token's text bytes (special tokens render as ""), no NUL.
 * @param[out] n_bytes bytes written to buf (pieces are at most a few dozen bytes; 256 is ample).
 * @param[out] reason  G4R_CONTINUE, G4R_STOP_EOG or G4R_STOP_LENGTH (the window is full, or
 *                     n_predict tokens were produced); repeated on later calls.
 * @return G4R_OK, G4R_ERR_STATE (no active generation), G4R_ERR_CANCELLED, G4R_ERR_DECODE,
 *         G4R_ERR_GRAMMAR (the grammar admits no token), G4R_ERR_BUFFER_TOO_SMALL. After an
 *         error the sequence produces nothing more until the next ingest.
 */
G4R_API g4r_status g4r_generate_next(g4r_model *model, int32_t seq, int32_t *token, char *buf,
                                     int32_t buf_size, int32_t *n_bytes, int32_t *reason);

/** End the generation of sequence `seq` and free its sampler and read-ahead. Idempotent.
 *  Waits at most for the step running now. The cache keeps what was evaluated: the prompt and
 *  the tokens produced, but for the last one or the read-ahead. */
G4R_API g4r_status g4r_generate_finish(g4r_model *model, int32_t seq);

/**
 * Log-probabilities of the token that the last g4r_generate_next() on `seq` produced (only when
 * it returned G4R_CONTINUE), and the n_top most likely tokens at that step, as recorded when it
 * was sampled (g4r_generate_start's n_logprobs >= n_top). They are the natural
 * logarithm of the model's own distribution: the softmax of the raw logits, before the
 * repetition penalty, grammar, temperature and top-k/top-p/min-p truncation (what OpenAI's
 * `logprobs` report). Costs one pass over the vocabulary per token (plus a partial sort for
 * n_logprobs > 0), only for generations started with n_logprobs >= 0.
 * @param[in]  n_top        0 <= n_top <= G4R_MAX_TOP_LOGPROBS alternatives.
 * @param[out] logprob      the produced token's log-probability (<= 0).
 * @param[out] top_tokens   int32_t[n_top]: most likely first; ties by lower id. NULL if n_top 0.
 * @param[out] top_logprobs float[n_top]: their log-probabilities. NULL if n_top is 0.
 * @param[out] n_written    alternatives written: min(n_top, vocabulary size).
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT, G4R_ERR_STATE (no token produced since the last
 *         g4r_generate_start or since an end-of-generation; or started with n_logprobs < n_top).
 */
G4R_API g4r_status g4r_generate_logprobs(g4r_model *model, int32_t seq, int32_t n_top, float *logprob,
                                         int32_t *top_tokens, float *top_logprobs,
                                         int32_t *n_written);

/**
 * Log-likelihood of a continuation: for each token tokens[j], n_prompt <= j < n_tokens, its
 * log-probability (natural log of the softmax of the raw logits) given tokens[0, j), evaluated
 * on sequence `seq` at once (other sequences wait). Uses and updates its cache like
 * g4r_model_ingest (the cached prefix up to tokens[n_prompt - 2] is
 * kept; the rest is evaluated in chunks of n_batch), so scoring several continuations of one
 * prompt evaluates the prompt once. Ends any active generation; afterwards the cache holds
 * `tokens`. This is the "loglikelihood" request of EleutherAI's lm-evaluation-harness.
 * @param[in]  tokens    int32_t[n_tokens]: the prompt, then the continuation.
 * @param[in]  n_prompt  prompt tokens, 1 <= n_prompt < n_tokens.
 * @param[in]  n_batch   tokens per evaluation, >= 1 (clamped to the context's batch size).
 * @param[out] logprobs  float[n_tokens - n_prompt].
 * @param[out] ranks     int32_t[n_tokens - n_prompt] or NULL: how many vocabulary entries had
 *                       a strictly higher logit (0: the token was the greedy choice).
 * @param[out] n_reused  cached tokens kept (may be NULL).
 * @return G4R_OK, G4R_ERR_INVALID_ARGUMENT, G4R_ERR_CONTEXT_OVERFLOW (n_tokens > n_ctx; the
 *         cache is unchanged), G4R_ERR_NOT_SUPPORTED (embedding model), G4R_ERR_CANCELLED,
 *         G4R_ERR_DECODE. After an error the cache is a prefix of `tokens`.
 */
G4R_API g4r_status g4r_model_score(g4r_model *model, int32_t seq, const int32_t *tokens, int32_t n_tokens,
                                   int32_t n_prompt, int32_t n_batch, float *logprobs,
                                   int32_t *ranks, int32_t *n_reused);

/**
 * Pooled embeddings of several token sequences, evaluated in as few batches as fit.
 * @param[in]  tokens   all sequences concatenated: int32_t[sum(seq_lens)].
 * @param[in]  seq_lens int32_t[n_seqs]; each 1 <= seq_lens[i] <= G4R_PROP_N_CTX (the window).
 *                      Sequences are packed into evaluations of at most G4R_PROP_N_BATCH tokens
 *                      and G4R_PROP_N_SEQ_MAX sequences.
 * @param[out] out      float[n_seqs * dim], row-major, the pooled (not normalised) vectors.
 * @param[in]  dim      must equal G4R_PROP_N_EMBD.
 * @return G4R_OK, G4R_ERR_NOT_SUPPORTED (not an embedding model), G4R_ERR_CONTEXT_OVERFLOW
 *         (a sequence is longer than the batch), G4R_ERR_INVALID_ARGUMENT, G4R_ERR_CANCELLED,
 *         G4R_ERR_DECODE.
 */
G4R_API g4r_status g4r_model_embed(g4r_model *model, const int32_t *tokens,
                                   const int32_t *seq_lens, int32_t n_seqs, float *out,
                                   int32_t dim);

/**
 * Ask the evaluation running on `model` (in another thread) to stop. The call running it
 * returns G4R_ERR_CANCELLED at the next graph boundary (a step leaves every sequence as it
 * was before it, to be evaluated again by the next step); the flag is cleared then, or when
 * the next g4r_model_ingest / g4r_generate_start / g4r_model_embed begins. Thread-safe, never
 * blocks.
 */
G4R_API void g4r_model_cancel(g4r_model *model);

#ifdef __cplusplus
}
#endif

#endif /* G4R_H */
