// bgevl: BGE-VL multimodal embeddings on libtorch. The one header to include.
#pragma once

#include "bgevl/clip_embedder.h"
#include "bgevl/embedder.h"
#include "bgevl/errors.h"
#include "bgevl/evaluate.h"
#include "bgevl/image_input.h"
#include "bgevl/index.h"
#include "bgevl/mllm_embedder.h"
#include "bgevl/options.h"
#include "bgevl/runtime.h"

namespace bgevl {
// The library version, "MAJOR.MINOR.PATCH".
const char* version();
}  // namespace bgevl
