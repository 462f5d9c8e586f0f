// Where a model lives: a folder, or a Hugging Face hub id resolved in the local cache.
#pragma once

#include <string>

#include "io/hub.h"

namespace bgevl::io {

// A folder path is returned as is. Otherwise an id like "BAAI/BGE-VL-base" is looked up in the
// Hugging Face cache (access.cache_dir, else $HF_HUB_CACHE, $HF_HOME/hub,
// ~/.cache/huggingface/hub): models--BAAI--BGE-VL-base/snapshots/<rev>, with <rev> read from
// refs/<revision> (or `revision` itself when it names a snapshot). A revision not in the cache
// is downloaded (io/hub.h) unless access.local_files_only or HF_HUB_OFFLINE=1:
// FileNotFoundError then says where it looked.
std::string resolve_model_dir(const std::string& path_or_id, const std::string& revision = "main",
                              const HubAccess& access = {});

}  // namespace bgevl::io
