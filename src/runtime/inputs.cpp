#include "runtime/inputs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bgevl/errors.h"

namespace bgevl::runtime {

namespace {

// A string that reads like a sentence rather than a file name: probably a text given as an image.
bool looks_like_text(const std::string& s) {
  const auto slash = s.find_last_of('/');
  const std::string base = slash == std::string::npos ? s : s.substr(slash + 1);
  return base.find(' ') != std::string::npos && base.find('.') == std::string::npos;
}

vision::PilMode pixel_mode(const ImageInput& in, int channels) {
  const std::string& m = in.mode();
  if (m.empty()) {
    switch (channels) {
      case 1:
        return vision::PilMode::L;
      case 2:
        return vision::PilMode::LA;
      case 3:
        return vision::PilMode::RGB;
      case 4:
        return vision::PilMode::RGBA;
    }
  }
  struct Entry {
    const char* name;
    vision::PilMode mode;
  };
  static const Entry modes[] = {{"L", vision::PilMode::L},       {"LA", vision::PilMode::LA},
                                {"RGB", vision::PilMode::RGB},   {"RGBA", vision::PilMode::RGBA},
                                {"CMYK", vision::PilMode::CMYK}, {"P", vision::PilMode::P},
                                {"1", vision::PilMode::One}};
  for (const auto& e : modes) {
    if (m != e.name) continue;
    BGEVL_CHECK_ARG(vision::channels_of(e.mode) == channels, "image pixels of mode '", m,
                    "' must have ", vision::channels_of(e.mode), " channel(s), got ", channels);
    return e.mode;
  }
  throw InvalidArgumentError(
      detail::concat("image pixel mode '", m, "' is not supported (L, LA, RGB, RGBA, CMYK, P, 1)"));
}

// The pixels tensor as (height, width, channels), or an InvalidArgumentError.
void check_pixels(const torch::Tensor& t) {
  BGEVL_CHECK_ARG(t.defined(), "image pixels tensor is undefined");
  BGEVL_CHECK_ARG(t.scalar_type() == torch::kUInt8, "image pixels must be uint8, got ",
                  t.scalar_type());
  BGEVL_CHECK_ARG(t.dim() == 2 || (t.dim() == 3 && t.size(2) >= 1 && t.size(2) <= 4),
                  "image pixels must be [H, W] or [H, W, C] with C = 1, 2, 3 or 4, got ",
                  t.sizes());
  BGEVL_CHECK_ARG(t.size(0) > 0 && t.size(1) > 0, "image pixels must not be empty, got ",
                  t.sizes());
}

int channels(const torch::Tensor& t) { return t.dim() == 2 ? 1 : static_cast<int>(t.size(2)); }

}  // namespace

void check_image(const ImageInput& in, size_t item) {
  switch (in.kind()) {
    case ImageInput::Kind::Path: {
      const std::string& p = in.text();
      BGEVL_CHECK_ARG(p.find('\0') == std::string::npos, "item ", item,
                      ": the image path contains a NUL byte");
      struct stat st {};
      if (p.empty() || ::stat(p.c_str(), &st) != 0) {
        std::string hint;
        if (looks_like_text(p))
          hint = " (if this is a text, pass it as the text: Python text=..., CLI --text)";
        throw FileNotFoundError(
            detail::concat("item ", item, ": image file not found: '", p, "'", hint));
      }
      BGEVL_CHECK_ARG(!S_ISDIR(st.st_mode), "item ", item, ": image path '", p,
                      "' is a folder, not an image file");
      // A FIFO would block the open, /dev/zero never end: regular files only.
      BGEVL_CHECK_ARG(S_ISREG(st.st_mode), "item ", item, ": image path '", p,
                      "' is not a regular file (a FIFO, device or socket)");
      BGEVL_CHECK_ARG(::access(p.c_str(), R_OK) == 0, "item ", item, ": image file '", p,
                      "' is not readable (", std::strerror(errno), ")");
      return;
    }
    case ImageInput::Kind::Bytes:
      BGEVL_CHECK_ARG(!in.text().empty(), "item ", item, ": image bytes are empty");
      return;
    case ImageInput::Kind::Pixels:
      try {
        check_pixels(in.tensor());
        pixel_mode(in, channels(in.tensor()));
      } catch (const InvalidArgumentError& e) {
        throw InvalidArgumentError(detail::concat("item ", item, ": ", e.what()));
      }
      return;
  }
}

void check_items(const std::vector<EmbedItem>& items) {
  BGEVL_CHECK_ARG(items.size() <= kMaxItemsPerCall, "encode takes at most ", kMaxItemsPerCall,
                  " items per call, got ", items.size(),
                  ": pass them in parts (Index.build / bgevl index stream any number)");
  for (size_t i = 0; i < items.size(); ++i) {
    BGEVL_CHECK_ARG(items[i].image || items[i].text, "item ", i,
                    " has neither an image nor a text");
    if (items[i].image) check_image(*items[i].image, i);
  }
}

vision::Image decode(const ImageInput& in) {
  switch (in.kind()) {
    case ImageInput::Kind::Path:
      return vision::decode_file(in.text());
    case ImageInput::Kind::Bytes:
      return vision::decode_bytes(reinterpret_cast<const uint8_t*>(in.text().data()),
                                  in.text().size());
    case ImageInput::Kind::Pixels: {
      const auto& t = in.tensor();
      check_pixels(t);
      const int ch = channels(t);
      const auto mode = pixel_mode(in, ch);
      auto c = t.to(torch::kCPU).contiguous();
      return vision::from_pixels(c.data_ptr<uint8_t>(), static_cast<int>(c.size(0)),
                                 static_cast<int>(c.size(1)), mode);
    }
  }
  throw Error("unknown image input kind");
}

std::vector<EmbedItem> zip_items(const std::vector<std::optional<ImageInput>>& images,
                                 const std::vector<std::optional<std::string>>& texts,
                                 const Prompt& prompt) {
  BGEVL_CHECK_ARG(!images.empty() || !texts.empty(),
                  "encode needs images, texts or both (got two empty lists)");
  BGEVL_CHECK_ARG(images.empty() || texts.empty() || images.size() == texts.size(),
                  "images and texts must be lists of the same length for composed queries (got ",
                  images.size(), " images and ", texts.size(), " texts)");
  std::vector<EmbedItem> items(std::max(images.size(), texts.size()));
  for (size_t i = 0; i < items.size(); ++i) {
    if (!images.empty()) items[i].image = images[i];
    if (!texts.empty()) items[i].text = texts[i];
    items[i].prompt = prompt;
  }
  return items;
}

torch::Tensor l2_normalize(const torch::Tensor& x) {
  auto f = x.to(torch::kFloat32);
  return f / f.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

torch::Tensor pixels_from_crops(const torch::Tensor& crops, const torch::Tensor& table) {
  BGEVL_CHECK_ARG(crops.dim() == 4 && crops.scalar_type() == torch::kByte,
                  "pixels_from_crops: crops must be [N, C, H, W] uint8, got ", crops.sizes(), " ",
                  crops.scalar_type());
  const int64_t C = crops.size(1);
  BGEVL_CHECK_ARG(
      table.dim() == 1 && table.numel() == C * 256 && table.scalar_type() == torch::kFloat32,
      "pixels_from_crops: the table must be [", C * 256, "] float32, got ", table.sizes());
  const auto offsets =
      torch::arange(C, crops.options().dtype(torch::kInt)).mul_(256).view({1, C, 1, 1});
  const auto index = crops.to(torch::kInt).add_(offsets);
  return table.to(crops.device()).index_select(0, index.view({-1})).view(crops.sizes());
}

}  // namespace bgevl::runtime

namespace bgevl {

Role parse_role(const std::string& q_or_c) {
  if (q_or_c == "q" || q_or_c == "query") return Role::Query;
  if (q_or_c == "c" || q_or_c == "candidate") return Role::Candidate;
  throw InvalidArgumentError(
      detail::concat("q_or_c must be 'q', 'query', 'c' or 'candidate', got '", q_or_c, "'"));
}

std::vector<EmbedItem> make_items(const std::vector<ImageInput>& images,
                                  const std::vector<std::string>& texts, const Prompt& prompt) {
  return runtime::zip_items(std::vector<std::optional<ImageInput>>(images.begin(), images.end()),
                            std::vector<std::optional<std::string>>(texts.begin(), texts.end()),
                            prompt);
}

}  // namespace bgevl
