// search_html: the page `bgevl search --html` writes.
#include <filesystem>

#include "bgevl/errors.h"
#include "bgevl/index.h"
#include "io/npy.h"
#include "io/util.h"
#include "vision/image.h"

namespace bgevl {

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

// Encoded image bytes as a data URI.
std::string data_uri(const std::string& bytes) {
  const auto header =
      vision::probe_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return "data:" + vision::mime_type(header) + ";base64," + io::base64_encode(bytes);
}

// An <img> source for a file: its bytes as a data URI, or a file:// link when large.
std::string image_src(const std::string& path) {
  try {
    return data_uri(io::read_file(path, 2u << 20));
  } catch (const Error&) {
    std::error_code ec;
    return "file://" + escape(std::filesystem::absolute(path, ec).string());
  }
}

}  // namespace

std::string search_html(const Query& q, const std::vector<SearchHit>& hits,
                        const std::string& title) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape(title) +
      "</title>\n<style>body{font-family:system-ui,sans-serif;margin:24px;background:#fafafa}"
      ".q{display:flex;gap:16px;align-items:center;margin-bottom:24px}"
      ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}"
      ".hit{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}"
      "img{max-width:100%;max-height:180px;display:block;margin:auto}"
      ".meta{font-size:13px;margin-top:6px;word-break:break-all}.score{color:#555}</style>"
      "</head>\n<body>\n<h1>" +
      escape(title) + "</h1>\n<div class=\"q\">";
  if (q.image && q.image->kind() == ImageInput::Kind::Path)
    h += "<img alt=\"query image\" src=\"" + image_src(q.image->text()) + "\">";
  else if (q.image && q.image->kind() == ImageInput::Kind::Bytes)
    h += "<img alt=\"query image\" src=\"" + data_uri(q.image->text()) + "\">";
  h += "<div>";
  if (q.query_id) h += "<div>query image: <b>" + escape(*q.query_id) + "</b></div>";
  if (q.text) h += "<div>text: <b>" + escape(*q.text) + "</b></div>";
  if (q.instruction) h += "<div>instruction: " + escape(*q.instruction) + "</div>";
  h += "</div></div>\n<div class=\"grid\">\n";
  for (const auto& hit : hits) {
    h += "<div class=\"hit\"><img alt=\"" + escape(hit.id) + "\" src=\"" + image_src(hit.path) +
         "\"><div class=\"meta\">#" + std::to_string(hit.rank) + " <span class=\"score\">" +
         std::to_string(hit.score).substr(0, 6) + "</span><br>" + escape(hit.id) + "</div></div>\n";
  }
  h += "</div>\n</body></html>\n";
  return h;
}

}  // namespace bgevl
