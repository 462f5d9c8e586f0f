// Where a model lives: a folder, or a Hugging Face hub id resolved in the local cache.
#pragma once

#include <string>

namespace bgevl::io {

// A folder path is returned as is. Otherwise an id like "BAAI/BGE-VL-base" is looked up in the
// local Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub):
// models--BAAI--BGE-VL-base/snapshots/<rev>, with <rev> read from refs/main (or `revision`
// when it names a ref or a snapshot). Nothing is downloaded. FileNotFoundError says where it
// looked.
std::string resolve_model_dir(const std::string& path_or_id, const std::string& revision = "main");

}  // namespace bgevl::io
