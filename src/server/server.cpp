#include "server/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "bgevl/clip_embedder.h"
#include "bgevl/errors.h"
#include "bgevl/mllm_embedder.h"
#include "io/util.h"
#include "server/batcher.h"
#include "server/metrics.h"
#include "server_page.h"  // kSearchPage: src/server/page.html, generated at build time
#include "vision/image.h"

namespace bgevl::server {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// ---- errors ------------------------------------------------------------------------------------

// An answer other than 200, with OpenAI's error body.
struct ApiError {
  ApiError(int status_, std::string message_, std::string type_ = "invalid_request_error",
           std::string code_ = "")
      : status(status_),
        message(std::move(message_)),
        type(std::move(type_)),
        code(std::move(code_)) {}
  int status;
  std::string message, type, code;
};

[[noreturn]] void bad(const std::string& message) { throw ApiError{400, message}; }

std::string error_body(const std::string& message, const std::string& type,
                       const std::string& code) {
  json e = {{"message", message}, {"type", type}};
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json({{"error", e}}).dump(-1, ' ', false, json::error_handler_t::replace);
}

void set_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e.message, e.type, e.code), "application/json");
}

// ---- request fields ----------------------------------------------------------------------------

// Nesting deeper than any request needs is refused before parsing: a body of a million '['
// would otherwise become a million nested arrays.
constexpr int kMaxJsonDepth = 32;

bool nesting_within(const std::string& s, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

json parse_body(const httplib::Request& req) {
  if (req.body.empty()) bad("the request has no body: send a JSON object");
  if (!nesting_within(req.body, kMaxJsonDepth))
    bad("the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) bad("the body is not valid JSON");
  if (!j.is_object()) bad("the body must be a JSON object");
  return j;
}

void check_fields(const json& j, const std::set<std::string>& known, const std::string& where) {
  for (const auto& [k, v] : j.items())
    if (!known.count(k)) {
      std::string list;
      for (const auto& f : known) list += (list.empty() ? "" : ", ") + f;
      bad(where + ": unknown field '" + k + "' (known: " + list + ")");
    }
}

std::optional<std::string> opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad(std::string("'") + key + "' must be a string or null");
  return it->get<std::string>();
}

// ---- the server --------------------------------------------------------------------------------

std::atomic<int> g_stop_fd{-1};

extern "C" void on_signal(int) {
  const int fd = g_stop_fd.load();
  if (fd >= 0) {
    const char c = 1;
    [[maybe_unused]] auto r = ::write(fd, &c, 1);
  }
}

std::string endpoint_of(const std::string& path) {
  static const std::set<std::string> known = {"/",          "/health",        "/metrics",
                                              "/v1/models", "/v1/embeddings", "/v1/search"};
  if (known.count(path)) return path;
  if (path.rfind("/v1/images/", 0) == 0) return "/v1/images";
  return "other";
}

// Set by the pre-routing handler on the connection's thread; requests that httplib answers before
// routing (413, a malformed request line) reach the logger without it.
thread_local std::chrono::steady_clock::time_point t_request_start;
thread_local bool t_routed = false;
// Counted in bgevl_requests_in_flight: until the response is about to be written (post-routing),
// so a client that has its answer never sees its own request still counted.
thread_local bool t_counted = false;

// BGEVL_TEST_BATCH_DELAY_MS: the tests' stand-in for a slow model (requests surely in flight).
std::chrono::milliseconds test_delay() {
  const char* v = std::getenv("BGEVL_TEST_BATCH_DELAY_MS");
  return std::chrono::milliseconds(v ? std::atoi(v) : 0);
}

class Service {
 public:
  Service(const Embedder& model, const Index* index, const ServerOptions& o)
      : model_(model),
        index_(index),
        o_(o),
        batcher_(model,
                 {o.max_batch > 0 ? o.max_batch : model.default_batch_size(),
                  std::chrono::microseconds(static_cast<int64_t>(o.max_wait_ms * 1000)),
                  [this] { return callers_.load(); }, test_delay()},
                 &metrics_) {
    model_name_ =
        o.model_name.empty() ? fs::path(model.model_dir()).filename().string() : o.model_name;
    if (!o.allow_file_paths.empty()) {
      std::error_code ec;
      allowed_root_ = fs::canonical(o.allow_file_paths, ec).string();
      BGEVL_CHECK(!ec && fs::is_directory(allowed_root_), FileNotFoundError, "--allow-file-paths ",
                  o.allow_file_paths, ": not a folder");
    }
    if (index_) {
      BGEVL_CHECK_ARG(family_name(model.family()) == std::string(family_name(index_->family())) &&
                          model.embedding_dim() == index_->dim(),
                      "the index ", index_->dir(), " was built with a ",
                      family_name(index_->family()), " model of dimension ", index_->dim(), " (",
                      index_->model_ref(), "), not this ", family_name(model.family()),
                      " model of dimension ", model.embedding_dim());
    }
  }

  void install(httplib::Server& svr) {
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = std::chrono::steady_clock::now();
      t_routed = true;
      t_counted = true;
      metrics_.in_flight(+1);
      const bool open = req.path == "/" || req.path == "/health";
      if (!o_.api_key.empty() && !open && !authorized(req)) {
        set_error(res, {401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                        "invalid_request_error", "invalid_api_key"});
        res.set_header("WWW-Authenticate", "Bearer");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_post_routing_handler([this](const httplib::Request&, httplib::Response&) {
      if (t_counted) metrics_.in_flight(-1);
      t_counted = false;
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double s =
          t_routed
              ? std::chrono::duration<double>(std::chrono::steady_clock::now() - t_request_start)
                    .count()
              : 0.0;
      if (t_counted) metrics_.in_flight(-1);  // not left counted if post-routing did not run
      t_counted = false;
      t_routed = false;
      metrics_.request(endpoint_of(req.path), res.status, s);
      if (!o_.quiet)
        std::fprintf(stderr, "%s %s %d %.1f ms\n", req.method.c_str(), req.path.c_str(), res.status,
                     s * 1000);
    });
    // Statuses httplib answers itself (404, 413, 400 for a malformed request line): JSON too.
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string msg = res.status == 404   ? "no route " + req.method + " " + req.path
                        : res.status == 413 ? "the request body is too large (--max-body-bytes)"
                        : res.status == 400 ? "malformed HTTP request"
                                            : "HTTP status " + std::to_string(res.status);
      res.set_content(error_body(msg, "invalid_request_error", ""), "application/json");
    });
    svr.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
          set_error(res, {500, "internal error", "server_error", ""});
        });
    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kSearchPage, "text/html; charset=utf-8");
    });
    route(svr, "GET", "/health", [this](const auto& req, auto& res) { health(req, res); });
    route(svr, "GET", "/metrics", [this](const auto&, auto& res) {
      res.set_content(metrics_.text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    route(svr, "GET", "/v1/models", [this](const auto&, auto& res) {
      json m = {{"id", model_name_}, {"object", "model"}, {"owned_by", "bgevl"}, {"created", 0}};
      res.set_content(json({{"object", "list"}, {"data", {m}}}).dump(), "application/json");
    });
    route(svr, "POST", "/v1/embeddings",
          [this](const auto& req, auto& res) { embeddings(req, res); });
    route(svr, "POST", "/v1/search", [this](const auto& req, auto& res) { search(req, res); });
    route(svr, "GET", R"(/v1/images/(.+))",
          [this](const auto& req, auto& res) { image(req, res); });
  }

  void stop() { batcher_.stop(); }

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // Counts a request as a possible caller of the batcher from its start until release() (after
  // its encode returned) or its end.
  struct Caller {
    explicit Caller(std::atomic<int64_t>& n_) : n(n_) { ++n; }
    ~Caller() { release(); }
    void release() {
      if (!done) --n;
      done = true;
    }
    std::atomic<int64_t>& n;
    bool done = false;
  };

  // Every handler's errors become a JSON error body: ApiError as it says, bgevl's
  // InvalidArgumentError and FileNotFoundError 400 (bad input), anything else 500.
  void route(httplib::Server& svr, const char* method, const std::string& pattern, Handler h) {
    auto wrapped = [h](const httplib::Request& req, httplib::Response& res) {
      try {
        h(req, res);
      } catch (const ApiError& e) {
        set_error(res, e);
      } catch (const InvalidArgumentError& e) {
        set_error(res, {400, e.what()});
      } catch (const FileNotFoundError& e) {
        set_error(res, {400, e.what()});
      } catch (const Error& e) {
        const bool closing = std::strstr(e.what(), "shutting down") != nullptr;
        set_error(res, {closing ? 503 : 500, e.what(), "server_error", ""});
      } catch (const std::bad_alloc&) {
        set_error(res, {507, "out of memory for this request", "server_error", ""});
      } catch (const std::exception& e) {
        set_error(res, {500, std::string("internal error: ") + e.what(), "server_error", ""});
      }
    };
    if (std::strcmp(method, "GET") == 0)
      svr.Get(pattern, wrapped);
    else
      svr.Post(pattern, wrapped);
  }

  bool authorized(const httplib::Request& req) const {
    const std::string want = "Bearer " + o_.api_key;
    const std::string got = req.get_header_value("Authorization");
    if (got.size() != want.size()) return false;
    unsigned diff = 0;  // constant time in the key's length
    for (size_t i = 0; i < got.size(); ++i) diff |= unsigned(got[i] ^ want[i]);
    return diff == 0;
  }

  void health(const httplib::Request&, httplib::Response& res) const {
    json j = {{"status", "ok"},
              {"model", model_name_},
              {"family", family_name(model_.family())},
              {"dim", model_.embedding_dim()},
              {"device", model_.device().str()},
              {"auth", !o_.api_key.empty()},
              {"max_batch", batcher_.default_batch_size()},
              {"index", nullptr}};
    if (index_)
      j["index"] = {{"dir", index_->dir()},
                    {"entries", index_->records().size()},
                    {"rows", index_->rows()},
                    {"type", index_->index_type()},
                    {"model", index_->model_ref()}};
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // A data: URI (base64), or with --allow-file-paths a path (or file:// URL) inside that folder.
  ImageInput image_input(const std::string& url) const {
    if (url.rfind("data:", 0) == 0) {
      const auto comma = url.find(',');
      if (comma == std::string::npos) bad("image: a data URI needs a ',' before its data");
      const std::string meta = url.substr(5, comma - 5);
      if (meta.size() < 7 || meta.compare(meta.size() - 7, 7, ";base64") != 0)
        bad("image: only base64 data URIs are accepted (data:image/...;base64,...)");
      auto bytes = io::base64_decode(url.substr(comma + 1));
      if (!bytes) bad("image: the data URI's base64 is malformed");
      check_image_bytes(*bytes);
      return ImageInput::bytes(std::move(*bytes));
    }
    if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0)
      bad("image: remote URLs are not fetched: send the image as a data URI "
          "(data:image/jpeg;base64,...)");
    if (allowed_root_.empty())
      bad("image: file paths are refused (start the server with --allow-file-paths DIR to "
          "allow paths inside DIR); send the image as a data URI");
    std::string p = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
    if (p.empty() || p.find('\0') != std::string::npos) bad("image: not a usable path");
    fs::path candidate = fs::path(p).is_absolute() ? fs::path(p) : fs::path(allowed_root_) / p;
    std::error_code ec;
    const fs::path real = fs::canonical(candidate, ec);
    if (ec) bad("image: no such file '" + p + "' under the allowed folder");
    const std::string r = real.string();
    if (r.rfind(allowed_root_ + "/", 0) != 0)
      throw ApiError{403, "image: '" + p + "' is outside the allowed folder"};
    if (!fs::is_regular_file(real)) bad("image: '" + p + "' is not a regular file");
    std::ifstream in(real, std::ios::binary);
    char head[4096];
    in.read(head, sizeof head);
    check_image_bytes(std::string(head, static_cast<size_t>(in.gcount())));
    return ImageInput::path(r);
  }

  // The format and the pixel limit, from the header, before anything is decoded.
  void check_image_bytes(const std::string& b) const {
    const auto h = vision::probe_image(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    if (h.format.empty()) bad("image: not an image (JPEG, PNG, WebP, BMP or TIFF expected)");
    if (h.format == "gif") bad("image: GIF is not supported (JPEG, PNG, WebP, BMP or TIFF)");
    if (h.width > 0 && h.height > 0 && h.width * h.height > o_.max_image_pixels)
      bad("image: " + std::to_string(h.width) + "x" + std::to_string(h.height) +
          " pixels exceeds the server's limit of " + std::to_string(o_.max_image_pixels) +
          " pixels (--max-image-pixels)");
  }

  Prompt prompt_for(const json& body, Role default_role) const {
    Prompt p;
    const auto role = opt_string(body, "q_or_c");
    const auto instruction = opt_string(body, "instruction");
    if (model_.family() == Family::Clip) {
      if (instruction) bad("'instruction': BGE-VL-CLIP takes no instruction (BGE-VL-MLLM does)");
      if (role) parse_role(*role);  // checked, then ignored as CLIP ignores roles
      return p;
    }
    p.role = role ? parse_role(*role) : default_role;
    if (instruction) {
      if (p.role != Role::Query) bad("'instruction' is for queries (q_or_c \"q\")");
      p.instruction = preset_instruction(*instruction);
    }
    return p;
  }

  // Tokens of an item's text as the model's tokenizer cuts it (CLIP: with its start and end
  // tokens; MLLM: the prompt of the text alone); image tokens are not counted.
  int64_t text_tokens(const EmbedItem& it, bool truncate) const {
    if (!it.text) return 0;
    if (const auto* clip = dynamic_cast<const ClipEmbedder*>(&model_))
      return clip->tokenize({*it.text}, truncate).attention_mask.sum().item<int64_t>();
    if (const auto* mllm = dynamic_cast<const MllmEmbedder*>(&model_))
      return mllm->data_process({EmbedItem(*it.text, it.prompt)})
          .attention_mask.sum()
          .item<int64_t>();
    return 0;
  }

  // The OpenAI body's "messages" (vLLM's chat form) as one composed item.
  EmbedItem item_from_messages(const json& messages, const Prompt& prompt) const {
    if (!messages.is_array() || messages.empty()) bad("'messages' must be a non-empty array");
    std::optional<ImageInput> image;
    std::string text;
    bool has_text = false;
    for (size_t m = 0; m < messages.size(); ++m) {
      const auto& msg = messages[m];
      const std::string where = "messages[" + std::to_string(m) + "]";
      if (!msg.is_object()) bad(where + " must be an object");
      check_fields(msg, {"role", "content", "name"}, where);
      const auto role = opt_string(msg, "role");
      if (!role || *role != "user") bad(where + ": 'role' must be \"user\"");
      const auto c = msg.find("content");
      if (c == msg.end()) bad(where + ": 'content' is required");
      auto add_text = [&](const std::string& t) {
        text += (has_text ? " " : "") + t;
        has_text = true;
      };
      if (c->is_string()) {
        add_text(c->get<std::string>());
        continue;
      }
      if (!c->is_array()) bad(where + ": 'content' must be a string or an array of parts");
      for (size_t p = 0; p < c->size(); ++p) {
        const auto& part = (*c)[p];
        const std::string pw = where + ".content[" + std::to_string(p) + "]";
        if (!part.is_object()) bad(pw + " must be an object");
        const auto type = opt_string(part, "type");
        if (type && *type == "text") {
          check_fields(part, {"type", "text"}, pw);
          const auto t = opt_string(part, "text");
          if (!t) bad(pw + ": 'text' is required");
          add_text(*t);
        } else if (type && *type == "image_url") {
          check_fields(part, {"type", "image_url"}, pw);
          if (image) bad("one image per query: " + pw + " is a second one");
          const auto iu = part.find("image_url");
          if (iu == part.end()) bad(pw + ": 'image_url' is required");
          std::optional<std::string> url;
          if (iu->is_string()) {
            url = iu->get<std::string>();
          } else if (iu->is_object()) {
            check_fields(*iu, {"url", "detail"}, pw + ".image_url");
            url = opt_string(*iu, "url");
          }
          if (!url) bad(pw + ": 'image_url' must be {\"url\": \"data:...\"}");
          image = image_input(*url);
        } else {
          bad(pw + ": 'type' must be \"text\" or \"image_url\"");
        }
      }
    }
    if (!image && !has_text) bad("'messages' hold no text and no image");
    EmbedItem it;
    it.image = std::move(image);
    if (has_text) it.text = text;
    it.prompt = prompt;
    return it;
  }

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    Caller caller(callers_);
    const json body = parse_body(req);
    check_fields(body,
                 {"model", "input", "messages", "encoding_format", "user", "dimensions", "q_or_c",
                  "instruction", "truncate"},
                 "request");
    (void)opt_string(body, "model");  // one model is served: any name is answered by it
    (void)opt_string(body, "user");
    const std::string format = opt_string(body, "encoding_format").value_or("float");
    if (format != "float" && format != "base64")
      bad("'encoding_format' must be \"float\" or \"base64\", got \"" + format + "\"");
    bool truncate = false;
    if (auto t = body.find("truncate"); t != body.end() && !t->is_null()) {
      if (!t->is_boolean()) bad("'truncate' must be true or false");
      truncate = t->get<bool>();
    }
    if (auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
      if (!d->is_number_integer() || d->get<int64_t>() != model_.embedding_dim())
        bad("'dimensions': this model's embeddings have " + std::to_string(model_.embedding_dim()) +
            " dimensions (no other is offered)");
    }
    const bool has_input = body.contains("input") && !body["input"].is_null();
    const bool has_messages = body.contains("messages") && !body["messages"].is_null();
    if (has_input == has_messages) bad("give either 'input' (texts) or 'messages' (chat form)");
    std::vector<EmbedItem> items;
    if (has_input) {
      const Prompt prompt = prompt_for(body, Role::Candidate);
      const auto& in = body["input"];
      if (in.is_string()) {
        items.emplace_back(in.get<std::string>(), prompt);
      } else if (in.is_array()) {
        if (in.empty()) bad("'input' is an empty array");
        if (static_cast<int64_t>(in.size()) > o_.max_items)
          bad("'input' has " + std::to_string(in.size()) + " items; at most " +
              std::to_string(o_.max_items) + " per request (--max-items)");
        for (size_t i = 0; i < in.size(); ++i) {
          if (in[i].is_number_integer() || in[i].is_array())
            bad("'input': token id inputs are not supported: send texts");
          if (!in[i].is_string()) bad("'input'[" + std::to_string(i) + "] must be a string");
          items.emplace_back(in[i].get<std::string>(), prompt);
        }
      } else {
        bad("'input' must be a string or an array of strings");
      }
    } else {
      items.push_back(item_from_messages(body["messages"], prompt_for(body, Role::Query)));
    }
    int64_t tokens = 0;
    for (const auto& it : items) tokens += text_tokens(it, truncate);
    EncodeOptions eo;
    eo.truncate = truncate;
    const torch::Tensor e = batcher_.encode(items, eo).contiguous();
    caller.release();
    json data = json::array();
    const int64_t dim = e.size(1);
    for (int64_t i = 0; i < e.size(0); ++i) {
      const float* row = e.data_ptr<float>() + i * dim;
      json emb;
      if (format == "base64")
        emb = io::base64_encode(row, sizeof(float) * dim);
      else
        emb = std::vector<float>(row, row + dim);
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(emb)}});
    }
    json out = {{"object", "list"},
                {"data", std::move(data)},
                {"model", model_name_},
                {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
    res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  void search(const httplib::Request& req, httplib::Response& res) {
    if (!index_) throw ApiError{404, "no index is loaded: start the server with --index INDEX_DIR"};
    Caller caller(callers_);
    const json body = parse_body(req);
    check_fields(body, {"image", "query_id", "text", "instruction", "k", "exclude", "group"},
                 "request");
    Query q;
    if (auto im = opt_string(body, "image")) q.image = image_input(*im);
    q.query_id = opt_string(body, "query_id");
    q.text = opt_string(body, "text");
    q.instruction = opt_string(body, "instruction");
    if (!q.image && !q.query_id && !q.text) bad("give 'image', 'query_id' or 'text'");
    if (q.image && q.query_id) bad("give 'image' or 'query_id', not both");
    if (q.query_id && !index_->find(*q.query_id))
      throw ApiError{404, "no entry '" + *q.query_id + "' in the index"};
    int64_t k = 10;
    if (auto kk = body.find("k"); kk != body.end() && !kk->is_null()) {
      if (!kk->is_number_integer() || kk->get<int64_t>() < 1 || kk->get<int64_t>() > o_.max_k)
        bad("'k' must be a whole number from 1 to " + std::to_string(o_.max_k));
      k = kk->get<int64_t>();
    }
    SearchOptions so;
    if (auto ex = body.find("exclude"); ex != body.end() && !ex->is_null()) {
      if (!ex->is_array()) bad("'exclude' must be an array of ids");
      for (const auto& x : *ex) {
        if (!x.is_string()) bad("'exclude' must be an array of ids");
        so.exclude.push_back(x.get<std::string>());
      }
    }
    so.group = opt_string(body, "group");
    const auto hits = index_->search(batcher_, {q}, k, so)[0];
    caller.release();
    json arr = json::array();
    for (const auto& h : hits)
      arr.push_back({{"rank", h.rank}, {"id", h.id}, {"path", h.path}, {"score", h.score}});
    res.set_content(json({{"results", arr}}).dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
  }

  void image(const httplib::Request& req, httplib::Response& res) const {
    if (!index_) throw ApiError{404, "no index is loaded"};
    const std::string id = req.matches[1];
    const auto* r = index_->find(id);
    if (!r) throw ApiError{404, "no entry '" + id + "' in the index"};
    std::ifstream in(r->path, std::ios::binary);
    if (!in) throw ApiError{404, "the file of '" + id + "' cannot be read: " + r->path};
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto h =
        vision::probe_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    res.set_header("Cache-Control", "max-age=3600");
    res.set_content(std::move(bytes), vision::mime_type(h).c_str());
  }

  const Embedder& model_;
  const Index* index_;
  const ServerOptions o_;
  Metrics metrics_;
  std::atomic<int64_t> callers_{0};
  Batcher batcher_;
  std::string model_name_, allowed_root_;
};

}  // namespace

void stop_server() { on_signal(0); }

int serve(const Embedder& model, const Index* index, const ServerOptions& options) {
  BGEVL_CHECK_ARG(options.port >= 0 && options.port <= 65535, "port must be 0..65535, got ",
                  options.port);
  BGEVL_CHECK_ARG(options.max_batch >= 0, "max_batch must be >= 0");
  BGEVL_CHECK_ARG(options.max_wait_ms >= 0, "max_wait_ms must be >= 0");
  BGEVL_CHECK_ARG(options.http_threads >= 1, "http_threads must be >= 1");
  Service service(model, index, options);
  httplib::Server svr;
  const size_t threads = static_cast<size_t>(options.http_threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(options.max_body_bytes);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_keep_alive_timeout(5);
  svr.set_tcp_nodelay(true);  // headers and body go out at once (no Nagle + delayed-ACK stall)
  service.install(svr);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a second server on the
  // same port would bind too and share the connections instead of failing. The socket is kept
  // to raise httplib's listen backlog of 5 (a burst of 64 connections would otherwise see
  // dropped SYNs and one-second retransmission stalls).
  int listen_fd = -1;
  svr.set_socket_options([&listen_fd](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = sock;
  });

  int port = options.port;
  const bool bound = port == 0 ? (port = svr.bind_to_any_port(options.host)) > 0
                               : svr.bind_to_port(options.host, port);
  BGEVL_CHECK(bound, Error, "cannot listen on ", options.host, ":", options.port,
              " (in use, or not an address of this machine)");
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);  // Linux: a second listen() sets the backlog

  int pipe_fds[2];
  BGEVL_CHECK(::pipe(pipe_fds) == 0, Error, "cannot create a pipe: ", std::strerror(errno));
  ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
  g_stop_fd = pipe_fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{}, old_pipe{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);  // a client that hangs up must not end the server

  // A signal (or stop_server) writes 1 to the pipe, the end of listening 0; this thread then
  // stops the listener, which returns once the requests in flight are answered.
  std::atomic<bool> listen_returned{false};
  std::thread watcher([&] {
    char c = 0;
    while (::read(pipe_fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    if (c != 0) std::fprintf(stderr, "bgevl serve: stopping (finishing requests in flight)\n");
    while (!listen_returned) {  // stop() is a no-op until listening has begun
      svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  if (options.on_ready) options.on_ready(port);
  svr.listen_after_bind();
  listen_returned = true;
  const char zero = 0;
  [[maybe_unused]] auto r = ::write(pipe_fds[1], &zero, 1);
  watcher.join();
  service.stop();
  g_stop_fd = -1;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  return 0;
}

}  // namespace bgevl::server
