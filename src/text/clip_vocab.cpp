// Loading of the CLIP tokenizer: vocab.json, merges.txt and the optional
// tokenizer_config.json / special_tokens_map.json, into ClipTokenizer::Impl (see
// text/clip_tokenizer.cpp for the semantics).
#include <algorithm>
#include <array>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/json.h"
#include "text/clip_tokenizer_impl.h"
#include "text/unicode.h"

namespace bgevl::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kEndOfWord = "</w>";
// The slow CLIPTokenizer reads merges.txt as
// `read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]`: the first line (the "#version" header)
// is always skipped and at most 48,894 merges are kept. CLIPConverter takes its merges from there.
constexpr std::size_t kMaxMerges = 49152 - 256 - 2;

std::string read_file(const fs::path& p, const char* what) {
  return io::read_file(p.string(), io::kMaxFileBytes,
                       ("CLIP tokenizer: " + std::string(what)).c_str());
}

json parse_json(const std::string& text, const fs::path& p) {
  return io::parse_json(text, "CLIP tokenizer: '" + p.string() + "'");
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the others to U+0100+n.
std::array<std::string, 256> byte_alphabet() {
  std::array<std::string, 256> out;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t c = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
    unicode::append_utf8(out[b], c);
  }
  return out;
}

// Python's str.split() whitespace, as far as ASCII and Latin-1 go.
bool py_space(unsigned char c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
}

// Reads a token role from tokenizer_config.json / special_tokens_map.json: a string, or an
// AddedToken dict with "content".
void read_role(
    const json& j, const char* key, std::string& value,
    std::vector<std::pair<std::string, std::pair<std::optional<bool>, std::optional<int64_t>>>>&
        tokens,
    const fs::path& p) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  if (v.is_string()) {
    value = v.get<std::string>();
  } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    value = v["content"].get<std::string>();
    if (v.contains("normalized") && v["normalized"].is_boolean()) {
      tokens.push_back({value, {v["normalized"].get<bool>(), std::nullopt}});
    }
  } else {
    throw InvalidArgumentError(detail::concat("CLIP tokenizer: '", p.string(), "': \"", key,
                                              "\" must be a string or an object with \"content\""));
  }
}

}  // namespace

SpecialConfig clip::read_special_config(const fs::path& dir) {
  SpecialConfig cfg;
  std::error_code ec;
  const fs::path tc = dir / "tokenizer_config.json";
  std::vector<std::pair<std::string, std::pair<std::optional<bool>, std::optional<int64_t>>>>
      from_map;
  if (fs::is_regular_file(tc, ec)) {
    const json j = parse_json(read_file(tc, "tokenizer config"), tc);
    read_role(j, "bos_token", cfg.bos, cfg.tokens, tc);
    read_role(j, "eos_token", cfg.eos, cfg.tokens, tc);
    read_role(j, "unk_token", cfg.unk, cfg.tokens, tc);
    read_role(j, "pad_token", cfg.pad, cfg.tokens, tc);
    if (j.is_object() && j.contains("added_tokens_decoder") &&
        j["added_tokens_decoder"].is_object()) {
      for (const auto& [key, v] : j["added_tokens_decoder"].items()) {
        BGEVL_CHECK_ARG(v.is_object() && v.contains("content") && v["content"].is_string(),
                        "CLIP tokenizer: '", tc.string(), "': added_tokens_decoder[\"", key,
                        "\"] has no string \"content\"");
        int64_t id = -1;
        try {
          std::size_t used = 0;
          id = std::stoll(key, &used);
          if (used != key.size()) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        BGEVL_CHECK_ARG(id >= 0 && id <= std::numeric_limits<int32_t>::max(), "CLIP tokenizer: '",
                        tc.string(), "': added_tokens_decoder key \"", key, "\" is not a token id");
        const std::string content = v["content"].get<std::string>();
        for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
          BGEVL_CHECK_ARG(!(v.contains(flag) && v[flag].is_boolean() && v[flag].get<bool>()),
                          "CLIP tokenizer: '", tc.string(), "': added token '", content, "' sets ",
                          flag, "=true, which is not supported");
        }
        std::optional<bool> normalized;
        if (v.contains("normalized") && v["normalized"].is_boolean())
          normalized = v["normalized"].get<bool>();
        cfg.tokens.push_back({content, {normalized, id}});
      }
    }
  }
  // special_tokens_map.json overrides tokenizer_config.json (transformers' from_pretrained order).
  const fs::path sm = dir / "special_tokens_map.json";
  if (fs::is_regular_file(sm, ec)) {
    const json j = parse_json(read_file(sm, "special tokens map"), sm);
    read_role(j, "bos_token", cfg.bos, from_map, sm);
    read_role(j, "eos_token", cfg.eos, from_map, sm);
    read_role(j, "unk_token", cfg.unk, from_map, sm);
    read_role(j, "pad_token", cfg.pad, from_map, sm);
  }
  // Flags from added_tokens_decoder win over the ones in the role dicts: put them last.
  from_map.insert(from_map.end(), cfg.tokens.begin(), cfg.tokens.end());
  cfg.tokens = std::move(from_map);
  return cfg;
}

std::unique_ptr<ClipTokenizer::Impl> ClipTokenizer::Impl::build(const fs::path& vocab_path,
                                                                const fs::path& merges_path,
                                                                const SpecialConfig& cfg) {
  auto impl = std::make_unique<Impl>();

  // vocab.json
  const json vj = parse_json(read_file(vocab_path, "vocabulary file"), vocab_path);
  BGEVL_CHECK_ARG(vj.is_object(), "CLIP tokenizer: '", vocab_path.string(),
                  "' must be a JSON object mapping tokens to ids, got ", vj.type_name());
  impl->vocab.reserve(vj.size() * 2);
  for (const auto& [token, v] : vj.items()) {
    BGEVL_CHECK_ARG(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                        v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                    "CLIP tokenizer: '", vocab_path.string(), "': the id of token '", token,
                    "' must be a non-negative integer below 2^31, got ", io::brief(v));
    impl->vocab[token] = static_cast<int32_t>(v.get<int64_t>());
  }
  BGEVL_CHECK_ARG(!impl->vocab.empty(), "CLIP tokenizer: '", vocab_path.string(), "' is empty");
  impl->vocab_entries = static_cast<int64_t>(impl->vocab.size());

  const auto alphabet = byte_alphabet();
  for (int b = 0; b < 256; ++b) {
    const auto it = impl->vocab.find(alphabet[b]);
    impl->byte_id[b] = it == impl->vocab.end() ? -1 : it->second;
    const auto it2 = impl->vocab.find(alphabet[b] + kEndOfWord);
    impl->byte_eow_id[b] = it2 == impl->vocab.end() ? -1 : it2->second;
  }

  // merges.txt
  std::string text = read_file(merges_path, "merges file");
  {
    std::size_t bad = 0;
    std::u32string tmp;
    BGEVL_CHECK_ARG(unicode::decode_utf8(text, tmp, &bad), "CLIP tokenizer: '",
                    merges_path.string(), "' is not valid UTF-8 (byte offset ", bad, ")");
  }
  // Python text mode turns \r\n and \r into \n.
  std::string lines_text;
  lines_text.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      lines_text.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      lines_text.push_back(text[i]);
    }
  }
  std::size_t b = 0, e = lines_text.size();
  while (b < e && py_space(static_cast<unsigned char>(lines_text[b]))) ++b;
  while (e > b && py_space(static_cast<unsigned char>(lines_text[e - 1]))) --e;
  const std::string_view body(lines_text.data() + b, e - b);
  impl->merges.reserve(std::min<std::size_t>(kMaxMerges, body.size() / 4 + 1));
  std::size_t line_no = 0;  // 0-based index into body lines; line 0 is the header
  std::size_t pos = 0;
  int32_t rank = 0;
  while (pos <= body.size() && !body.empty()) {
    std::size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    const std::string_view line = body.substr(pos, nl - pos);
    if (line_no >= 1) {
      if (line_no > kMaxMerges) break;
      std::vector<std::string_view> parts;
      std::size_t k = 0;
      while (k < line.size()) {
        while (k < line.size() && py_space(static_cast<unsigned char>(line[k]))) ++k;
        const std::size_t start = k;
        while (k < line.size() && !py_space(static_cast<unsigned char>(line[k]))) ++k;
        if (k > start) parts.push_back(line.substr(start, k - start));
      }
      // The line number in the file, 1-based, assuming no leading blank lines.
      BGEVL_CHECK_ARG(parts.size() == 2, "CLIP tokenizer: '", merges_path.string(), "' line ",
                      line_no + 1, ": expected two tokens separated by a space, got '",
                      std::string(line), "'");
      const auto ia = impl->vocab.find(std::string(parts[0]));
      const auto ib = impl->vocab.find(std::string(parts[1]));
      const std::string merged = std::string(parts[0]) + std::string(parts[1]);
      const auto im = impl->vocab.find(merged);
      BGEVL_CHECK_ARG(ia != impl->vocab.end() && ib != impl->vocab.end() && im != impl->vocab.end(),
                      "CLIP tokenizer: '", merges_path.string(), "' line ", line_no + 1,
                      ": merge '", std::string(line), "' uses a token that is not in vocab.json ('",
                      ia == impl->vocab.end()   ? std::string(parts[0])
                      : ib == impl->vocab.end() ? std::string(parts[1])
                                                : merged,
                      "')");
      // A repeated pair keeps its first rank (bpe_ranks is a dict; the converter lists its keys).
      if (impl->merges.insert(ia->second, ib->second, rank, im->second)) ++rank;
    }
    ++line_no;
    pos = nl + 1;
    if (nl == body.size()) break;
  }

  // Special and added tokens.
  auto lookup = [&](const std::string& content) -> int32_t {
    const auto it = impl->vocab.find(content);
    if (it != impl->vocab.end()) return it->second;
    for (const auto& t : cfg.tokens) {
      if (t.first == content && t.second.second) return static_cast<int32_t>(*t.second.second);
    }
    return -1;
  };
  auto role_id = [&](const std::string& content, const char* role) {
    const int32_t id = lookup(content);
    BGEVL_CHECK_ARG(id >= 0, "CLIP tokenizer: the ", role, " token '", content, "' is not in '",
                    vocab_path.string(), "'");
    return id;
  };
  impl->bos = role_id(cfg.bos, "begin");
  impl->eos = role_id(cfg.eos, "end");
  impl->pad = role_id(cfg.pad, "padding");
  impl->unk_token = cfg.unk;
  impl->unk_id = lookup(cfg.unk);

  std::vector<std::string> contents{cfg.bos, cfg.eos, cfg.unk, cfg.pad};
  for (const auto& t : cfg.tokens) contents.push_back(t.first);
  std::vector<std::string> done;
  for (const std::string& content : contents) {
    if (content.empty() || std::find(done.begin(), done.end(), content) != done.end()) continue;
    done.push_back(content);
    const int32_t id = lookup(content);
    if (id < 0) continue;
    bool normalized = true;  // CLIPTokenizer's AddedToken default
    for (const auto& t : cfg.tokens) {
      if (t.first == content && t.second.first) normalized = *t.second.first;
    }
    AddedToken tok;
    tok.id = id;
    tok.normalized = normalized;
    std::size_t bad = 0;
    std::u32string cps;
    BGEVL_CHECK_ARG(unicode::decode_utf8(content, cps, &bad), "CLIP tokenizer: token '", content,
                    "' is not valid UTF-8");
    if (normalized) {
      normalize(content, tok.content);
      if (tok.content.empty()) continue;
      impl->normalized_tokens.push_back(std::move(tok));
    } else {
      tok.content = std::move(cps);
      impl->raw_tokens.push_back(std::move(tok));
    }
  }
  return impl;
}

}  // namespace bgevl::text
