// g4r-chat.cpp - chat formats through llama.cpp's common/chat (templates, tool calls,
// reasoning), the GGUF's chat template, and JSON schema to GBNF grammar.
#include "g4r-impl.h"

#include "chat.h"                    // llama.cpp common: chat formats, tool calls, reasoning
#include "json-schema-to-grammar.h"  // llama.cpp common: JSON schema -> GBNF

#include <cstdlib>
#include <cstring>
#include <map>

namespace g4r {

// The compiled templates of one model, per template source ("" = the GGUF's).
struct chat_cache {
    std::map<std::string, common_chat_templates_ptr> templates;
};

void chat_cache_deleter::operator()(chat_cache *c) const { delete c; }

namespace {

// llama.cpp's JSON-schema converter reports a regex pattern it cannot enforce ("accepting any
// string") with fprintf(stderr), and so does its grammar parser for a bad grammar. The library
// never prints: while a StderrCapture lives, the C stream stderr points at a memory stream
// (glibc and macOS let a program assign it), and what was written goes to `out`. Captures are
// serialised; Python writes its own stderr through the file descriptor, not this FILE*, so it
// is not captured.
std::mutex g_stderr_mu;

char *dup_string(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, s.c_str(), s.size() + 1);
    return out;
}

common_json string_array(const std::vector<std::string> &items) {
    common_json arr = common_json::array();
    for (const auto &i : items) arr.push_back(i);
    return arr;
}

}  // namespace

StderrCapture::StderrCapture(std::string &out) : out_(out), lock_(g_stderr_mu) {
#if defined(__GLIBC__) || defined(__APPLE__)
    mem_ = open_memstream(&data_, &size_);
    if (mem_) {
        saved_ = stderr;
        stderr = mem_;
    }
#endif
}

StderrCapture::~StderrCapture() {
    if (!mem_) return;
    stderr = saved_;
    std::fclose(mem_);
    if (data_) {
        out_.assign(data_, size_);
        std::free(data_);
    }
}

}  // namespace g4r

using namespace g4r;

extern "C" {

g4r_status g4r_json_schema_to_grammar(const char *schema_json, char *buf, size_t buf_size,
                                      size_t *n_needed) {
    G4R_GUARD_BEGIN
    clear_error();
    if (!schema_json) fail(G4R_ERR_INVALID_ARGUMENT, "schema_json is NULL");
    std::string grammar, printed;
    try {
        StderrCapture capture(printed);
        grammar = json_schema_to_grammar(common_json::parse(schema_json), /*force_gbnf=*/true);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {  // parse errors and unsupported constructs
        fail(G4R_ERR_INVALID_ARGUMENT, e.what());
    }
    if (!printed.empty()) {  // e.g. "WARNING: JSON schema conversion was incomplete: pattern ..."
        while (!printed.empty() && printed.back() == '\n') printed.pop_back();
        if (printed.rfind("WARNING: ", 0) == 0) printed.erase(0, 9);
        log_trampoline(GGML_LOG_LEVEL_WARN, (printed + "\n").c_str(), nullptr);
    }
    if (n_needed) *n_needed = grammar.size();
    if (!buf || grammar.size() >= buf_size)
        fail(G4R_ERR_BUFFER_TOO_SMALL, "buffer too small for the grammar");
    std::memcpy(buf, grammar.c_str(), grammar.size() + 1);
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_chat_apply(g4r_model *model, const char *chat_template, const char *request_json,
                          char **result_json) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!request_json || !result_json) fail(G4R_ERR_INVALID_ARGUMENT, "request_json and result_json must not be NULL");
    *result_json = nullptr;
    common_json req;
    common_chat_templates_inputs in;
    try {
        req = common_json::parse(request_json);
        if (!req.is_object()) fail(G4R_ERR_INVALID_ARGUMENT, "the request must be a JSON object");
        in.messages = common_chat_msgs_parse_oaicompat(req.value("messages", common_json::array()));
        if (req.contains("tools") && !req.at("tools").is_null())
            in.tools = common_chat_tools_parse_oaicompat(req.at("tools"));
        in.tool_choice = common_chat_tool_choice_parse_oaicompat(req.value("tool_choice", std::string("auto")));
        in.parallel_tool_calls = req.value("parallel_tool_calls", true);
        in.enable_thinking = req.value("enable_thinking", true);
        in.add_generation_prompt = req.value("add_generation_prompt", true);
        in.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
        if (req.contains("json_schema") && !req.at("json_schema").is_null())
            in.json_schema = req.at("json_schema").dump();
    } catch (const g4r_failure &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_INVALID_ARGUMENT, std::string("invalid chat request: ") + e.what());
    }
    std::string key = chat_template ? chat_template : "";
    common_chat_params out;
    std::map<std::string, bool> caps;
    {
        std::lock_guard<std::mutex> lock(model->chat_mu);
        if (!model->chat) model->chat.reset(new chat_cache());
        auto &templates = model->chat->templates;
        auto it = templates.find(key);
        if (it == templates.end()) {
            if (key.empty() && !llama_model_chat_template(model->model, nullptr))
                fail(G4R_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
            common_chat_templates_ptr t;
            try {
                t = common_chat_templates_init(model->model, key);
            } catch (const std::bad_alloc &) {
                throw;
            } catch (const std::exception &e) {
                fail(G4R_ERR_INVALID_ARGUMENT, std::string("llama.cpp cannot read the chat template: ") + e.what());
            }
            if (!t) fail(G4R_ERR_INVALID_ARGUMENT, "llama.cpp cannot read the chat template");
            it = templates.emplace(key, std::move(t)).first;
        }
        try {
            caps = common_chat_templates_get_caps(it->second.get());
            out = common_chat_templates_apply(it->second.get(), in);
        } catch (const std::bad_alloc &) {
            throw;
        } catch (const std::exception &e) {
            fail(G4R_ERR_INVALID_ARGUMENT, std::string("llama.cpp cannot apply the chat template: ") + e.what());
        }
    }
    common_json res = common_json::object();
    res["prompt"] = out.prompt;
    res["format"] = std::string(common_chat_format_name(out.format));
    res["format_id"] = static_cast<int64_t>(out.format);
    res["grammar"] = out.grammar;
    res["grammar_lazy"] = out.grammar_lazy;
    res["generation_prompt"] = out.generation_prompt;
    res["supports_thinking"] = out.supports_thinking;
    res["thinking_start_tag"] = out.thinking_start_tag;
    res["thinking_end_tags"] = string_array(out.thinking_end_tags);
    res["preserved_tokens"] = string_array(out.preserved_tokens);
    res["additional_stops"] = string_array(out.additional_stops);
    res["parser"] = out.parser;
    common_json triggers = common_json::array();
    for (const auto &t : out.grammar_triggers) {
        common_json tj = common_json::object();
        tj["type"] = static_cast<int64_t>(t.type);
        tj["value"] = t.value;
        tj["token"] = static_cast<int64_t>(t.token);
        triggers.push_back(tj);
    }
    res["grammar_triggers"] = triggers;
    // The same triggers as llama.cpp's sampler builds them (common/sampling.cpp), ready for
    // g4r_generate_start: regular expressions and token ids.
    common_json patterns = common_json::array();
    common_json tokens = common_json::array();
    for (const auto &t : out.grammar_triggers) {
        switch (t.type) {
            case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: patterns.push_back(regex_escape(t.value)); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: patterns.push_back(t.value); break;
            case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL: {
                std::string a = t.value.empty() ? std::string("^$")
                    : (t.value.front() != '^' ? "^" : "") + t.value + (t.value.back() != '$' ? "$" : "");
                patterns.push_back(a);
                break;
            }
            case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: tokens.push_back(static_cast<int64_t>(t.token)); break;
        }
    }
    res["trigger_patterns"] = patterns;
    res["trigger_tokens"] = tokens;
    common_json caps_json = common_json::object();
    for (const auto &kv : caps) caps_json[kv.first] = kv.second;
    res["caps"] = caps_json;
    *result_json = dup_string(res.dump());
    return G4R_OK;
    G4R_GUARD_END
}

g4r_status g4r_chat_parse(const char *parser_json, const char *text, size_t text_len,
                          int32_t is_partial, char **result_json) {
    G4R_GUARD_BEGIN
    clear_error();
    if (!parser_json || (!text && text_len > 0) || !result_json)
        fail(G4R_ERR_INVALID_ARGUMENT, "invalid chat parse arguments");
    *result_json = nullptr;
    common_chat_parser_params params;
    try {
        common_json pj = common_json::parse(parser_json);
        int64_t fmt = pj.value("format_id", static_cast<int64_t>(0));
        if (fmt < 0 || fmt >= COMMON_CHAT_FORMAT_COUNT) fail(G4R_ERR_INVALID_ARGUMENT, "unknown chat format id " + std::to_string(fmt));
        params.format = static_cast<common_chat_format>(fmt);
        params.generation_prompt = pj.value("generation_prompt", std::string());
        params.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
        params.parse_tool_calls = pj.value("parse_tool_calls", true);
        std::string parser = pj.value("parser", std::string());
        if (!parser.empty()) params.parser.load(parser);
    } catch (const g4r_failure &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_INVALID_ARGUMENT, std::string("invalid parser description: ") + e.what());
    }
    common_chat_msg msg;
    try {
        msg = common_chat_parse(std::string(text ? text : "", text_len), is_partial != 0, params);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        fail(G4R_ERR_GRAMMAR, std::string("the reply does not follow the chat format: ") + e.what());
    }
    common_json res = common_json::object();
    res["content"] = msg.content;
    res["reasoning_content"] = msg.reasoning_content;
    common_json calls = common_json::array();
    for (const auto &c : msg.tool_calls) {
        common_json cj = common_json::object();
        cj["name"] = c.name;
        cj["arguments"] = c.arguments;
        cj["id"] = c.id;
        calls.push_back(cj);
    }
    res["tool_calls"] = calls;
    *result_json = dup_string(res.dump());
    return G4R_OK;
    G4R_GUARD_END
}

void g4r_string_free(char *s) { std::free(s); }

g4r_status g4r_model_chat_template(g4r_model *model, const char **tmpl) {
    G4R_GUARD_BEGIN
    clear_error();
    require_model(model);
    if (!tmpl) fail(G4R_ERR_INVALID_ARGUMENT, "tmpl is NULL");
    const char *t = llama_model_chat_template(model->model, nullptr);
    if (!t) fail(G4R_ERR_NOT_FOUND, "the model has no tokenizer.chat_template");
    *tmpl = t;
    return G4R_OK;
    G4R_GUARD_END
}

}  // extern "C"
