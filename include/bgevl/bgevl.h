// bgevl: BGE-VL multimodal embeddings on libtorch. The one header to include.
#pragma once

#include "bgevl/clip_embedder.h"
#include "bgevl/errors.h"
#include "bgevl/image_input.h"
#include "bgevl/mllm_embedder.h"
#include "bgevl/options.h"

#include <string>

namespace bgevl {
// The library version, "MAJOR.MINOR.PATCH".
const char* version();

// Which embedder serves a checkpoint folder or cached hub id (read from its config.json):
// BGE-VL-base/large -> Clip (ClipEmbedder); BGE-VL-MLLM / v1.5 -> Mllm (MllmEmbedder).
enum class ModelFamily { Clip, Mllm };
ModelFamily model_family(const std::string& path_or_id, const std::string& revision = "main");
}  // namespace bgevl
