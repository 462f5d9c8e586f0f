// Mistral tokenizer of BGE-VL-MLLM with the semantics of transformers 4.45.2's slow
// LlamaTokenizer (models/llama/tokenization_llama.py + tokenization_utils.py), SentencePiece
// 0.1.97's BPE encoder (re-implemented in text/sentencepiece_bpe.cpp) doing the subword work:
//
//   1. legacy=False only: every "▁" in the text becomes " ", and "▁" is put in front of the text
//      when add_prefix_space (default true; null in tokenizer_config.json counts as false, as in
//      Python). Empty texts are left alone.
//   2. The text is cut around the added tokens (<unk> <s> </s> <image> <pad> and any other) with
//      transformers' Trie.split (ported as is, on UTF-8 bytes), then lstrip/rstrip/single_word of
//      each matched added token are applied to its neighbours as PreTrainedTokenizer.tokenize does
//      (Python str.strip whitespace).
//   3. Each other piece goes through SentencePiece:
//        legacy=True:  the model as shipped (dummy prefix "▁" added in front of every piece);
//        legacy=False: the model with normalizer_spec.add_dummy_prefix=false; a piece that starts
//                      with "▁" or " " is encoded as unk_token + piece and the first
//                      len(encode(unk_token)) pieces are dropped (the "<unk>" trick).
//   4. legacy=False: a leading lone "▁" followed by a special token (bos/eos/unk/sep/pad/cls/mask
//      and additional_special_tokens; <image> is not one of them unless the config says so) is
//      dropped.
//   5. Pieces become ids (added tokens first, then the SentencePiece vocabulary), BOS in front when
//      add_bos_token (default true), EOS at the end when add_eos_token (default false).
// Batches are padded on the left with the pad token, with an attention mask.
//
// The fast tokenizer (tokenizer.json, Rust `tokenizers`) gives the same ids for legacy=True; for
// legacy=False it differs only at the very start of a text (leading spaces or "▁", an added token
// first), never for BGE-VL-MLLM's prompts, which all start with "[INST]"
// (tests/fixtures/tokenizer/mistral_parity.json records both).
//
// Files read from the model folder (as LlamaTokenizer.from_pretrained reads them):
//   tokenizer.model          required;
//   tokenizer_config.json    legacy, add_bos_token, add_eos_token, add_prefix_space, special
//                            tokens, additional_special_tokens, added_tokens_decoder;
//   special_tokens_map.json, added_tokens.json
//                            only when tokenizer_config.json has no added_tokens_decoder (the
//                            older format; transformers ignores them otherwise).
#include "text/mistral_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/json.h"
#include "text/sentencepiece_bpe.h"
#include "text/trie.h"
#include "text/unicode.h"

namespace bgevl::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr std::string_view kUnderline = "\xE2\x96\x81";  // U+2581 "▁" (SPIECE_UNDERLINE)

std::string read_file(const fs::path& p, const char* what) {
  return io::read_file(p.string(), io::kMaxFileBytes,
                       ("Mistral tokenizer: " + std::string(what)).c_str());
}

// The JSON object in `p`, or nullopt when the file does not exist.
std::optional<json> read_json_object(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  const json j = io::parse_json(read_file(p, "file"), "Mistral tokenizer: '" + p.string() + "'");
  BGEVL_CHECK_ARG(j.is_object(), "Mistral tokenizer: '", p.string(),
                  "' must hold a JSON object, got ", j.type_name());
  return j;
}

// Python's str.isspace(): Unicode White_Space plus U+001C..U+001F (bidi classes B and S).
bool py_isspace(char32_t c) { return unicode::is_space(c) || (c >= 0x1C && c <= 0x1F); }

char32_t decode_at(const std::string& s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (n == 1) return b(0);
  if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

// str.lstrip() / str.rstrip() of well-formed UTF-8.
std::string py_lstrip(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t n = utf8_len(static_cast<unsigned char>(s[i]));
    if (!py_isspace(decode_at(s, i, n))) break;
    i += n;
  }
  return s.substr(i);
}

std::string py_rstrip(const std::string& s) {
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!py_isspace(decode_at(s, start, end - start))) break;
    end = start;
  }
  return s.substr(0, end);
}

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool special = false;
};

struct Piece {
  std::string piece;
  int64_t id;
};

// The content of a special-token entry: "<s>", {"content": "<s>", ...} or null.
std::optional<std::string> token_content(const json& v, const fs::path& file,
                                         const std::string& key) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", file.string(), "': ", key,
                                            " must be a string, a token object or null"));
}

bool get_bool(const json& cfg, const char* key, bool dflt, const fs::path& file) {
  if (!cfg.contains(key) || cfg[key].is_null()) return dflt;
  BGEVL_CHECK_ARG(cfg[key].is_boolean(), "Mistral tokenizer: '", file.string(), "': ", key,
                  " must be true, false or null");
  return cfg[key].get<bool>();
}

}  // namespace

struct MistralTokenizer::Impl {
  std::unique_ptr<SentencePieceBpe> sp;
  bool legacy = true;
  bool add_prefix_space = true;
  bool add_bos = true;
  bool add_eos = false;
  std::string unk_token = "<unk>";
  std::size_t unk_token_length = 0;
  int64_t bos = -1;
  int64_t eos = -1;
  int64_t pad = -1;
  std::vector<AddedToken> added;                             // by id
  std::unordered_map<std::string, std::size_t> added_index;  // content -> index in `added`
  std::set<std::string> all_special_tokens;
  Trie trie;

  std::vector<Piece> sp_encode(const std::string& text) const {
    std::vector<Piece> out;
    for (auto& r : sp->encode(text)) out.push_back({std::move(r.piece), r.id});
    return out;
  }

  // LlamaTokenizer._tokenize
  std::vector<Piece> tokenize_piece(const std::string& text) const {
    if (legacy || !(text.rfind(kUnderline, 0) == 0 || text.rfind(' ', 0) == 0))
      return sp_encode(text);
    std::vector<Piece> tokens = sp_encode(unk_token + text);
    if (tokens.size() >= unk_token_length)
      tokens.erase(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(unk_token_length));
    return tokens;
  }

  const AddedToken* find_added(const std::string& s) const {
    auto it = added_index.find(s);
    return it == added_index.end() ? nullptr : &added[it->second];
  }

  // PreTrainedTokenizer.tokenize (+ LlamaTokenizer.tokenize), pieces with their ids.
  std::vector<Piece> tokenize(std::string text) const {
    const bool prefix_handling = !legacy && !text.empty();
    if (prefix_handling) {
      std::string replaced;
      replaced.reserve(text.size());
      for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, kUnderline.size(), kUnderline) == 0) {
          replaced.push_back(' ');
          i += kUnderline.size();
        } else {
          replaced.push_back(text[i++]);
        }
      }
      text = std::move(replaced);
      if (add_prefix_space) text = std::string(kUnderline) + text;
    }
    const std::vector<std::string> tokens = split_added(text);

    std::vector<Piece> out;
    for (const std::string& token : tokens) {
      if (token.empty()) continue;
      if (const AddedToken* tok = find_added(token)) {
        out.push_back({token, tok->id});
      } else {
        for (Piece& p : tokenize_piece(token)) {
          if (const AddedToken* a = find_added(p.piece)) p.id = a->id;
          out.push_back(std::move(p));
        }
      }
    }
    if (prefix_handling && out.size() > 1 && out[0].piece == kUnderline &&
        all_special_tokens.count(out[1].piece))
      out.erase(out.begin());
    return out;
  }

  // Trie.split, then the lstrip / rstrip / single_word loop of PreTrainedTokenizer.tokenize (each
  // matched added token edits its neighbours; "" entries are skipped later).
  std::vector<std::string> split_added(const std::string& text) const {
    std::vector<std::string> tokens = trie.split(text);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const std::string token = tokens[i];
      const AddedToken* tok = find_added(token);
      if (!tok) continue;
      std::optional<std::string> left, right;
      if (i > 0) left = tokens[i - 1];
      if (i + 1 < tokens.size()) right = tokens[i + 1];
      const bool left_ok = left && !left->empty();
      const bool right_ok = right && !right->empty();
      if (tok->rstrip && right_ok) tokens[i + 1] = py_lstrip(*right);
      if (tok->lstrip && left_ok) tokens[i - 1] = py_rstrip(*left);
      if (tok->single_word && left_ok && left->back() != ' ') {
        tokens[i - 1] += token;
        tokens[i].clear();
      } else if (tok->single_word && right_ok && right->front() != ' ') {
        tokens[i + 1] = token + tokens[i + 1];
        tokens[i].clear();
      }
    }
    return tokens;
  }

  std::vector<int64_t> encode(const std::string& text) const {
    std::size_t bad = 0;
    std::u32string cps;
    BGEVL_CHECK_ARG(unicode::decode_utf8(text, cps, &bad),
                    "Mistral tokenizer: the text is not valid UTF-8 (byte offset ", bad, ")");
    std::vector<int64_t> ids;
    if (add_bos) ids.push_back(bos);
    for (const Piece& p : tokenize(text)) ids.push_back(p.id);
    if (add_eos) ids.push_back(eos);
    return ids;
  }

  // convert_tokens_to_ids of one token string: added tokens first, then the SentencePiece vocab.
  int64_t token_to_id(const std::string& token) const {
    if (const AddedToken* a = find_added(token)) return a->id;
    return sp->piece_to_id(token);
  }

  void add_token(AddedToken t) {
    auto it = added_index.find(t.content);
    if (it != added_index.end()) {
      added[it->second] = std::move(t);
      return;
    }
    added_index.emplace(t.content, added.size());
    added.push_back(std::move(t));
  }
};

MistralTokenizer::MistralTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MistralTokenizer::MistralTokenizer(MistralTokenizer&&) noexcept = default;
MistralTokenizer& MistralTokenizer::operator=(MistralTokenizer&&) noexcept = default;
MistralTokenizer::~MistralTokenizer() = default;

namespace {
// Whether a tokenizer.json (LlamaConverter's output) encodes legacy (true) or non-legacy (false)
// prefix handling; nullopt when there is no such file or it says neither.
std::optional<bool> legacy_from_tokenizer_json(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  const auto j = read_json_object(path);
  if (!j) return std::nullopt;
  std::function<bool(const json&, const char*)> has_type = [&](const json& node, const char* type) {
    if (!node.is_object()) return false;
    if (node.value("type", "") == type) return true;
    for (const char* list : {"normalizers", "pretokenizers"})
      if (node.contains(list) && node[list].is_array())
        for (const auto& n : node[list])
          if (has_type(n, type)) return true;
    return false;
  };
  if (j->contains("normalizer") && has_type((*j)["normalizer"], "Prepend")) return true;
  if (j->contains("pre_tokenizer") && has_type((*j)["pre_tokenizer"], "Metaspace")) return false;
  return std::nullopt;
}
}  // namespace

MistralTokenizer MistralTokenizer::from_dir(const std::string& dir) {
  std::error_code ec;
  BGEVL_CHECK(fs::is_directory(dir, ec), FileNotFoundError, "Mistral tokenizer: model folder '",
              dir, "' does not exist or is not a folder");
  const fs::path d(dir);
  const fs::path model_path = d / "tokenizer.model";
  const fs::path config_path = d / "tokenizer_config.json";
  const fs::path map_path = d / "special_tokens_map.json";
  const fs::path added_path = d / "added_tokens.json";

  auto impl = std::make_unique<Impl>();
  const std::string model_bytes = read_file(model_path, "SentencePiece model");
  const json cfg = read_json_object(config_path).value_or(json::object());

  impl->legacy = get_bool(cfg, "legacy", true, config_path);
  // With a tokenizer.json beside it, transformers uses LlamaTokenizerFast, which loads that file as
  // it is and ignores `legacy` (unless add_prefix_space is set, which makes it rebuild from the
  // slow tokenizer): the file's normalizer then decides. Prepend("▁") is the legacy behaviour; a
  // Metaspace pre-tokenizer without it is the non-legacy one.
  if (!(cfg.contains("add_prefix_space") && cfg["add_prefix_space"].is_boolean())) {
    if (const auto fast = legacy_from_tokenizer_json(d / "tokenizer.json")) impl->legacy = *fast;
  }
  impl->add_bos = get_bool(cfg, "add_bos_token", true, config_path);
  impl->add_eos = get_bool(cfg, "add_eos_token", false, config_path);
  // LlamaTokenizer(add_prefix_space=True) by default; an explicit null reaches it as None (falsy).
  impl->add_prefix_space = true;
  if (cfg.contains("add_prefix_space")) {
    const json& v = cfg["add_prefix_space"];
    BGEVL_CHECK_ARG(v.is_null() || v.is_boolean(), "Mistral tokenizer: '", config_path.string(),
                    "': add_prefix_space must be true, false or null");
    impl->add_prefix_space = v.is_boolean() && v.get<bool>();
  }

  try {
    impl->sp = std::make_unique<SentencePieceBpe>(model_bytes);
  } catch (const std::runtime_error& e) {
    throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", model_path.string(),
                                              "' is not a valid SentencePiece model (", e.what(),
                                              ")"));
  }
  // LlamaTokenizer.get_spm_processor: legacy=False loads the model with add_dummy_prefix=false.
  if (!impl->legacy) impl->sp->set_add_dummy_prefix(false);
  const int64_t sp_size = impl->sp->size();

  // Special tokens: LlamaTokenizer's defaults, then tokenizer_config.json.
  std::map<std::string, std::optional<std::string>> special{
      {"bos_token", "<s>"},        {"eos_token", "</s>"},       {"unk_token", "<unk>"},
      {"pad_token", std::nullopt}, {"sep_token", std::nullopt}, {"cls_token", std::nullopt},
      {"mask_token", std::nullopt}};
  std::vector<std::string> additional;
  auto read_special = [&](const json& j, const fs::path& file) {
    for (auto& [key, value] : special) {
      if (j.contains(key)) value = token_content(j[key], file, key);
    }
    if (j.contains("additional_special_tokens") && !j["additional_special_tokens"].is_null()) {
      const json& a = j["additional_special_tokens"];
      BGEVL_CHECK_ARG(a.is_array(), "Mistral tokenizer: '", file.string(),
                      "': additional_special_tokens must be a list");
      for (const json& t : a) {
        auto c = token_content(t, file, "additional_special_tokens");
        if (c && std::find(additional.begin(), additional.end(), *c) == additional.end())
          additional.push_back(*c);
      }
    }
  };
  read_special(cfg, config_path);

  // Added tokens.
  if (cfg.contains("added_tokens_decoder") && !cfg["added_tokens_decoder"].is_null()) {
    const json& dec = cfg["added_tokens_decoder"];
    BGEVL_CHECK_ARG(dec.is_object(), "Mistral tokenizer: '", config_path.string(),
                    "': added_tokens_decoder must be an object");
    std::vector<AddedToken> toks;
    for (const auto& [idx, t] : dec.items()) {
      AddedToken a;
      try {
        std::size_t used = 0;
        a.id = std::stoll(idx, &used);
        if (used != idx.size() || a.id < 0 || a.id > std::numeric_limits<int32_t>::max())
          throw std::invalid_argument(idx);
      } catch (const std::exception&) {
        throw InvalidArgumentError(detail::concat("Mistral tokenizer: '", config_path.string(),
                                                  "': added_tokens_decoder key '", idx,
                                                  "' is not a token id"));
      }
      BGEVL_CHECK_ARG(t.is_object() && t.contains("content") && t["content"].is_string(),
                      "Mistral tokenizer: '", config_path.string(), "': added_tokens_decoder[", idx,
                      "] must be an object with a string \"content\"");
      a.content = t["content"].get<std::string>();
      a.lstrip = get_bool(t, "lstrip", false, config_path);
      a.rstrip = get_bool(t, "rstrip", false, config_path);
      a.single_word = get_bool(t, "single_word", false, config_path);
      a.special = get_bool(t, "special", false, config_path);
      toks.push_back(std::move(a));
    }
    std::sort(toks.begin(), toks.end(),
              [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
    for (AddedToken& a : toks) impl->add_token(std::move(a));
  } else {
    // Older checkpoints: special_tokens_map.json overrides, then added_tokens.json.
    if (auto m = read_json_object(map_path)) read_special(*m, map_path);
    if (auto a = read_json_object(added_path)) {
      std::set<std::string> specials(additional.begin(), additional.end());
      for (const auto& [k, v] : special)
        if (v) specials.insert(*v);
      std::vector<AddedToken> toks;
      for (const auto& [content, id] : a->items()) {
        BGEVL_CHECK_ARG(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                            id.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                        "Mistral tokenizer: '", added_path.string(), "': the id of '", content,
                        "' must be a non-negative integer below 2^31, got ", io::brief(id));
        AddedToken t;
        t.content = content;
        t.id = id.get<int64_t>();
        t.special = specials.count(content) > 0;
        toks.push_back(std::move(t));
      }
      std::sort(toks.begin(), toks.end(),
                [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
      for (AddedToken& t : toks) impl->add_token(std::move(t));
    }
  }
  // PreTrainedTokenizer.__init__ step 4: special tokens missing from the added tokens are added
  // (with their SentencePiece id when the vocabulary has them, else after the last id).
  std::vector<std::string> all_special;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (special[key]) all_special.push_back(*special[key]);
  }
  for (const std::string& a : additional) all_special.push_back(a);
  for (const std::string& s : all_special) {
    impl->all_special_tokens.insert(s);
    if (impl->find_added(s) || s.empty()) continue;
    AddedToken t;
    t.content = s;
    t.special = true;
    const int id = impl->sp->piece_to_id(s);
    if (id != impl->sp->unk_id() || s == impl->sp->id_to_piece(impl->sp->unk_id())) {
      t.id = id;
    } else {
      int64_t next = sp_size;
      for (const AddedToken& x : impl->added) next = std::max(next, x.id + 1);
      t.id = next;
    }
    impl->add_token(std::move(t));
  }
  for (const AddedToken& a : impl->added) impl->trie.add(a.content);

  impl->unk_token = special["unk_token"].value_or("");
  if (!impl->legacy) impl->unk_token_length = impl->sp_encode(impl->unk_token).size();
  auto id_of = [&](const char* key) -> int64_t {
    return special[key] ? impl->token_to_id(*special[key]) : -1;
  };
  impl->bos = id_of("bos_token");
  impl->eos = id_of("eos_token");
  impl->pad = id_of("pad_token");
  BGEVL_CHECK_ARG(!impl->add_bos || impl->bos >= 0, "Mistral tokenizer: '", config_path.string(),
                  "': add_bos_token is true but there is no bos_token");
  BGEVL_CHECK_ARG(!impl->add_eos || impl->eos >= 0, "Mistral tokenizer: '", config_path.string(),
                  "': add_eos_token is true but there is no eos_token");
  return MistralTokenizer(std::move(impl));
}

std::vector<int64_t> MistralTokenizer::encode(const std::string& text) const {
  return impl_->encode(text);
}

TokenBatch MistralTokenizer::encode_batch(const std::vector<std::string>& texts) const {
  BGEVL_CHECK_ARG(!texts.empty(),
                  "Mistral tokenizer: encode_batch needs at least one text, got none");
  BGEVL_CHECK_ARG(
      impl_->pad >= 0,
      "Mistral tokenizer: padding needs a pad_token, and tokenizer_config.json has none");
  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  for (const std::string& t : texts) rows.push_back(impl_->encode(t));
  return pad_rows(rows, impl_->pad, PadSide::Left);
}

int64_t MistralTokenizer::bos_id() const { return impl_->bos; }

int64_t MistralTokenizer::max_id() const {
  int64_t m = impl_->sp->size() - 1;
  for (const auto& a : impl_->added) m = std::max(m, a.id);
  return std::max({m, impl_->bos, impl_->eos, impl_->pad});
}
int64_t MistralTokenizer::pad_id() const { return impl_->pad; }

int64_t MistralTokenizer::added_token_id(const std::string& content) const {
  const AddedToken* a = impl_->find_added(content);
  BGEVL_CHECK_ARG(a != nullptr, "Mistral tokenizer: '", content, "' is not an added token");
  return a->id;
}

bool MistralTokenizer::legacy() const { return impl_->legacy; }

}  // namespace bgevl::text
