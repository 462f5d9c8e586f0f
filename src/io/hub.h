// Downloads from the Hugging Face hub into its standard cache, as huggingface_hub does
// (file_download.py): the revision API for the commit and file list, HEAD on
// {endpoint}/{repo}/resolve/{commit}/{file} for the ETag (X-Linked-Etag for LFS files) and
// X-Repo-Commit, blobs/{etag} downloaded through redirects with resumable `.incomplete` files,
// snapshots/{commit}/{file} relative symlinks to the blobs, refs/{revision} holding the commit.
// Only the files a bgevl model needs: configs, tokenizer files, safetensors (and their index).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace bgevl::io {

struct HubAccess {
  std::string cache_dir;          // empty: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
  std::string token;              // empty: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, $HF_HOME/token
  bool local_files_only = false;  // also when HF_HUB_OFFLINE=1: the cache only, never the network
  // Called while a file downloads: (file, bytes done, bytes in all; 0 when unknown). Optional.
  std::function<void(const std::string&, int64_t, int64_t)> progress;
};

// The hub cache folder HubAccess and the environment name.
std::string hub_cache_dir(const HubAccess& access = {});

// True when bgevl was built with libcurl (downloads possible).
bool hub_downloads_available();

// Downloads repo `repo_id` at `revision` (branch, tag or commit) into the cache and returns the
// snapshot folder. FileNotFoundError (no such repository, revision or file; the hub cannot be
// reached), Error (401/403: a private or gated repository without a valid token; other HTTP
// errors and broken transfers, naming the URL). A download cut off midway leaves
// blobs/{etag}.incomplete, continued by the next call with an HTTP Range request.
std::string hub_download(const std::string& repo_id, const std::string& revision,
                         const HubAccess& access = {});

}  // namespace bgevl::io
