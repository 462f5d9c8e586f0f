// The family-agnostic interface: one Embedder for every model family, items that carry an image,
// a text or both (and, for families that need one, a prompt role), and bgevl::load, which reads
// a checkpoint's config.json and builds the right family.
//
//   auto model = bgevl::load("BAAI/BGE-VL-base");        // folder or hub id in the local cache
//   std::vector<bgevl::EmbedItem> items = {
//       {bgevl::ImageInput::path("q.png"), "make the background dark"},  // a composed query
//       bgevl::EmbedItem(bgevl::ImageInput::path("a.png")),              // an image
//       bgevl::EmbedItem("a photo of a cat")};                           // a text
//   torch::Tensor e = model->encode(items);                // [3, D], L2-normalised float32
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/image_input.h"
#include "bgevl/options.h"

namespace bgevl {

// The model families bgevl serves. bgevl::load picks one from config.json (model_type or
// architectures) through a registry; each has a concrete class with its own extras.
enum class Family {
  Clip,       // BGE-VL-base, BGE-VL-large (CLIPModel): ClipEmbedder
  LlavaNext,  // BGE-VL-MLLM-S1/S2, BGE-VL-v1.5 (LLaVA-NeXT + Mistral-7B): MllmEmbedder
};

// The family's name as config.json's model_type spells it: "clip", "llava_next".
const char* family_name(Family family);

// What an item is in a retrieval task. Families whose prompt depends on it (BGE-VL-MLLM: the
// model card's q_or_c) require Query or Candidate; families without prompts (CLIP) embed queries
// and candidates alike and ignore it.
enum class Role { Unspecified, Query, Candidate };

// "q" or "query" -> Query, "c" or "candidate" -> Candidate (the model card's strings);
// InvalidArgumentError otherwise.
Role parse_role(const std::string& q_or_c);

struct Prompt {
  Role role = Role::Unspecified;
  // The query's task instruction (BGE-VL-MLLM); families without prompts refuse one.
  std::optional<std::string> instruction;

  static Prompt query(std::optional<std::string> instruction = std::nullopt) {
    return {Role::Query, std::move(instruction)};
  }
  static Prompt candidate() { return {Role::Candidate, std::nullopt}; }
};

// The BGE-VL-MLLM model card's composed-image-retrieval instruction (with its trailing space).
inline constexpr const char kComposedRetrievalInstruction[] =
    "Retrieve the target image that best meets the combined criteria by using both the provided "
    "image and the image retrieval instructions: ";

// One input: an image, a text, or both (a composed query: "this image, changed like this").
struct EmbedItem {
  std::optional<ImageInput> image;
  std::optional<std::string> text;
  Prompt prompt;

  EmbedItem() = default;
  explicit EmbedItem(ImageInput image_, Prompt prompt_ = {})
      : image(std::move(image_)), prompt(std::move(prompt_)) {}
  explicit EmbedItem(std::string text_, Prompt prompt_ = {})
      : text(std::move(text_)), prompt(std::move(prompt_)) {}
  EmbedItem(ImageInput image_, std::string text_, Prompt prompt_ = {})
      : image(std::move(image_)), text(std::move(text_)), prompt(std::move(prompt_)) {}
};

// Items from parallel lists, as the model cards' encode(images=..., text=...) takes them: images
// only, texts only, or equal-length lists of (image, text) pairs, all with `prompt`.
// InvalidArgumentError when both lists are empty or their lengths differ.
std::vector<EmbedItem> make_items(const std::vector<ImageInput>& images,
                                  const std::vector<std::string>& texts, const Prompt& prompt = {});

class Embedder {
 public:
  virtual ~Embedder() = default;
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;

  // L2-normalised float32 [N, embedding_dim()] on device(); row i embeds items[i]. Every item is
  // checked (files exist, roles given, ...) before anything is computed; long lists run in
  // batches of options.batch_size (0: default_batch_size()), ordered by cost where that saves
  // padding, with the rows returned in the caller's order. An empty list: InvalidArgumentError.
  virtual torch::Tensor encode(const std::vector<EmbedItem>& items,
                               const EncodeOptions& options = {}) const = 0;

  virtual Family family() const = 0;
  virtual int64_t embedding_dim() const = 0;
  virtual int64_t default_batch_size() const = 0;
  virtual torch::Device device() const = 0;
  virtual torch::ScalarType dtype() const = 0;
  // The checkpoint folder (a hub id resolved to its snapshot) and the revision it was loaded at.
  virtual const std::string& model_dir() const = 0;
  virtual const std::string& revision() const = 0;

  // Moves the weights (module.to). float16 on the CPU: InvalidArgumentError.
  virtual void to(const torch::Device& device, torch::ScalarType dtype) = 0;

  // Reloads the tokenizer and image processor from a folder or hub id (transformers'
  // set_processor), at `revision`, or at the revision the model was loaded at when empty.
  // A folder of another family, or one without processor files: InvalidArgumentError.
  virtual void set_processor(const std::string& path_or_id, const std::string& revision = "") = 0;

 protected:
  Embedder() = default;
};

// Loads the checkpoint in a folder or cached hub id with the family its config.json names.
// FileNotFoundError (no folder, no config.json, a missing shard), InvalidArgumentError (not a
// BGE-VL checkpoint, a bad config or bad weights, a dtype the device cannot run).
std::unique_ptr<Embedder> load(const std::string& path_or_id, const LoadOptions& options = {});

// The family of a checkpoint folder or cached hub id, from its config.json.
Family model_family(const std::string& path_or_id, const std::string& revision = "main");

}  // namespace bgevl
