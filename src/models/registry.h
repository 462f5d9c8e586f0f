// The family registry: the one table that maps a checkpoint's config.json (model_type,
// architectures) and a processor folder's preprocessor_config.json to a model family and its
// loader. bgevl::load, bgevl::model_family, the CLI and Python's AutoModel all go through it;
// nothing else branches on the family. A new family is a folder under src/models/ that defines
// its FamilyEntry, plus one line in registry.cpp (and its value in bgevl::Family).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/embedder.h"
#include "bgevl/options.h"

namespace bgevl::models {

struct FamilyEntry {
  Family family;
  std::string title;                          // "BGE-VL-CLIP", for messages
  std::vector<std::string> model_types;       // config.json model_type values
  std::vector<std::string> architectures;     // config.json architectures values
  std::vector<std::string> image_processors;  // preprocessor_config.json image_processor_type
  std::vector<std::string> tokenizer_files;   // files that hold the family's tokenizer
  // Loads a resolved checkpoint folder.
  std::unique_ptr<Embedder> (*load)(const std::string& dir, const LoadOptions& options);
};

const std::vector<FamilyEntry>& families();
const FamilyEntry& entry(Family family);

// The family a config.json describes; InvalidArgumentError naming the known ones otherwise.
const FamilyEntry& detect(const std::string& config_json_path);

// The family whose processor a folder holds, for set_processor: from its config.json when there
// is one, else from preprocessor_config.json's image_processor_type, else from its tokenizer
// files; nullopt when nothing tells.
std::optional<Family> processor_family(const std::string& dir);

}  // namespace bgevl::models
