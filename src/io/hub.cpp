#include "io/hub.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <vector>

#include "bgevl/errors.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors_header.h"
#include "io/util.h"

#ifdef BGEVL_WITH_CURL
#include <curl/curl.h>
#endif

namespace bgevl::io {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

fs::path hf_home() {
  if (auto h = env("HF_HOME"); !h.empty()) return h;
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return fs::path(x) / "huggingface";
  return fs::path(env("HOME").empty() ? "/" : env("HOME")) / ".cache" / "huggingface";
}

}  // namespace

std::string hub_cache_dir(const HubAccess& access) {
  if (!access.cache_dir.empty()) return access.cache_dir;
  if (auto c = env("HF_HUB_CACHE"); !c.empty()) return c;
  if (auto c = env("HUGGINGFACE_HUB_CACHE"); !c.empty()) return c;
  return (hf_home() / "hub").string();
}

#ifndef BGEVL_WITH_CURL

bool hub_downloads_available() { return false; }

std::string hub_download(const std::string& repo_id, const std::string&, const HubAccess&) {
  throw FileNotFoundError("'" + repo_id +
                          "' is not in the Hugging Face cache and this bgevl was built without "
                          "libcurl (Debian: libcurl4-openssl-dev), so it cannot download it");
}

#else

bool hub_downloads_available() { return true; }

namespace {

// The files a bgevl model reads (safetensors shards come from the index).
bool wanted(const std::string& f) {
  static const std::set<std::string> names = {"config.json",
                                              "preprocessor_config.json",
                                              "tokenizer.json",
                                              "tokenizer_config.json",
                                              "special_tokens_map.json",
                                              "added_tokens.json",
                                              "vocab.json",
                                              "merges.txt",
                                              "tokenizer.model",
                                              "model.safetensors",
                                              "model.safetensors.index.json"};
  return names.count(f) > 0;
}

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names, the last response's
  std::string body;
  std::string error;  // curl's, when the transfer failed
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) r->headers.clear();  // a new response (after a redirect)
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r->headers[name] = trim_space(line.substr(colon + 1));
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Response*>(user)->body.append(data, size * n);
  return size * n;
}

struct FileSink {
  std::FILE* f;
  int64_t done, total;
  const std::string* name;
  const HubAccess* access;
};

size_t on_file(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<FileSink*>(user);
  const size_t w = std::fwrite(data, size, n, s->f);
  s->done += static_cast<int64_t>(w * size);
  if (s->access->progress) s->access->progress(*s->name, s->done, s->total);
  return w * size;
}

// One transfer of `url` with the request headers `hs`; the response headers go to `r`. Every
// transfer gives up on a connection after 30 s and on a transfer stalled for 60 s.
class Curl {
 public:
  Curl(const std::string& url, const std::vector<std::string>& hs, Response& r) {
    static const bool init = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == 0; }();
    BGEVL_CHECK(init, Error, "libcurl failed to initialise");
    h_ = curl_easy_init();
    BGEVL_CHECK(h_, Error, "libcurl: no handle");
    for (const auto& h : hs) list_ = curl_slist_append(list_, h.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, list_);
    curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h_, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h_, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, err_);
  }
  // curl's message for a failed transfer.
  std::string error(CURLcode rc) const { return err_[0] ? err_ : curl_easy_strerror(rc); }
  ~Curl() {
    curl_easy_cleanup(h_);
    if (list_) curl_slist_free_all(list_);
  }
  CURL* get() { return h_; }

 private:
  CURL* h_;
  curl_slist* list_ = nullptr;
  char err_[CURL_ERROR_SIZE] = {0};
};

struct Hub {
  std::string endpoint, token, repo;

  std::vector<std::string> auth() const {
    std::vector<std::string> h = {"User-Agent: bgevl", "Accept-Encoding: identity"};
    if (!token.empty()) h.push_back("Authorization: Bearer " + token);
    return h;
  }

  // GET (or HEAD) a URL; redirects followed when `follow`.
  Response request(const std::string& url, bool head, bool follow) const {
    Response r;
    Curl c(url, auth(), r);
    curl_easy_setopt(c.get(), CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r);
    const CURLcode rc = curl_easy_perform(c.get());
    if (rc != CURLE_OK) {
      r.error = c.error(rc);
      return r;
    }
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
    return r;
  }

  [[noreturn]] void fail(const Response& r, const std::string& what, const std::string& url) const {
    if (!r.error.empty())  // neither cached nor reachable: not found, as transformers says
      throw FileNotFoundError(what +
                              " is not in the Hugging Face cache and the hub cannot be "
                              "reached (" +
                              url + "): " + r.error +
                              " (offline? download it where the network is reachable, or give "
                              "the folder)");
    if (r.status == 401 || r.status == 403)
      throw Error(what + ": the hub answered " + std::to_string(r.status) +
                  (token.empty() ? " (a private or gated repository: set HF_TOKEN or pass token=)"
                                 : " (the token has no access to this repository)"));
    if (r.status == 404)
      throw FileNotFoundError(what + ": not found on the hub (" + url +
                              "): check the repository id and revision");
    throw Error(what + ": the hub answered HTTP " + std::to_string(r.status) + " (" + url + ")");
  }
};

std::string normalize_etag(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

void link_snapshot(const fs::path& pointer, const fs::path& blob) {
  fs::create_directories(pointer.parent_path());
  std::error_code ec;
  fs::remove(pointer, ec);
  const fs::path rel = fs::relative(blob, pointer.parent_path());
  fs::create_symlink(rel, pointer, ec);
  if (ec) fs::copy_file(blob, pointer, fs::copy_options::overwrite_existing);  // no symlinks here
}

void download_file(const Hub& hub, const fs::path& root, const std::string& commit,
                   const std::string& file, const HubAccess& access) {
  const fs::path pointer = root / "snapshots" / commit / file;
  std::error_code ec;
  if (fs::exists(pointer, ec)) return;  // a snapshot file is immutable
  const std::string url = hub.endpoint + "/" + hub.repo + "/resolve/" + commit + "/" + file;
  // HEAD without following: the CDN's Location must not be taken for the metadata.
  Response h = hub.request(url, true, false);
  for (int hops = 0; hops < 5 && h.status >= 300 && h.status < 400 && h.error.empty(); ++hops) {
    const auto loc = h.headers["location"];
    if (loc.empty() || loc.rfind("http", 0) == 0) break;  // absolute: the file's storage
    h = hub.request(hub.endpoint + loc, true, false);     // relative: a renamed repository
  }
  if (!h.error.empty() || h.status >= 400) hub.fail(h, "'" + hub.repo + "' file " + file, url);
  std::string etag = normalize_etag(h.headers.count("x-linked-etag") ? h.headers["x-linked-etag"]
                                                                     : h.headers["etag"]);
  BGEVL_CHECK(!etag.empty() && etag.find('/') == std::string::npos && etag != "." && etag != "..",
              Error, url, ": the hub gave no usable ETag");
  int64_t size = -1;
  for (const char* k : {"x-linked-size", "content-length"})
    if (h.headers.count(k) && size < 0) size = std::atoll(h.headers[k].c_str());
  const fs::path blob = root / "blobs" / etag;
  fs::create_directories(blob.parent_path());
  // Two processes (Dask workers) downloading one file take turns; the second finds it done.
  FileLock lock((root.parent_path() / ".locks" / root.filename() / (etag + ".lock")).string());
  if (!fs::exists(blob, ec)) {
    const fs::path part = fs::path(blob.string() + ".incomplete");
    const int64_t have = fs::exists(part, ec) ? static_cast<int64_t>(fs::file_size(part)) : 0;
    std::FILE* f = std::fopen(part.c_str(), "ab");
    BGEVL_CHECK(f, Error, "cannot write ", part.string());
    auto hs = hub.auth();
    if (have > 0) hs.push_back("Range: bytes=" + std::to_string(have) + "-");
    Response r;
    Curl c(url, hs, r);
    FileSink sink{f, have, size, &file, &access};
    curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c.get(), CURLOPT_UNRESTRICTED_AUTH, 0L);  // no token to the CDN
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c.get(), CURLOPT_FAILONERROR, 1L);
    const CURLcode rc = curl_easy_perform(c.get());
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    // Flushed and synced before the rename below makes it the blob (a full disk is an error here).
    const bool synced = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
    const bool closed = std::fclose(f) == 0 && synced;
    if (rc == CURLE_RANGE_ERROR || status == 416) fs::remove(part, ec);  // start afresh next time
    BGEVL_CHECK(rc == CURLE_OK && closed, Error, "downloading ", hub.repo, "/", file, " (", url,
                ") stopped after ", sink.done, size > 0 ? " of " + std::to_string(size) : "",
                " bytes: ", c.error(rc), " (run again to continue from there)");
    if (have > 0 && status == 200) {
      // The server ignored the Range request and sent the whole file after our part: redo.
      fs::remove(part, ec);
      throw Error("downloading " + hub.repo + "/" + file +
                  ": the server does not resume downloads; run again to start over");
    }
    const int64_t got = static_cast<int64_t>(fs::file_size(part));
    if (size >= 0 && got != size) {
      fs::remove(part, ec);
      throw Error("downloading " + hub.repo + "/" + file + ": got " + std::to_string(got) +
                  " bytes, the hub announced " + std::to_string(size));
    }
    fs::rename(part, blob);
  }
  link_snapshot(pointer, blob);
}

}  // namespace

std::string hub_download(const std::string& repo_id, const std::string& revision,
                         const HubAccess& access) {
  Hub hub;
  hub.repo = repo_id;
  hub.endpoint = env("HF_ENDPOINT").empty() ? "https://huggingface.co" : env("HF_ENDPOINT");
  while (!hub.endpoint.empty() && hub.endpoint.back() == '/') hub.endpoint.pop_back();
  hub.token = access.token;
  if (hub.token.empty()) hub.token = env("HF_TOKEN");
  if (hub.token.empty()) hub.token = env("HUGGING_FACE_HUB_TOKEN");
  if (hub.token.empty()) {
    const std::string token_file = (hf_home() / "token").string();
    if (std::error_code ec; fs::is_regular_file(token_file, ec)) {
      const std::string t = read_file(token_file, 1 << 16, "hub token file");
      hub.token = trim_space(t.substr(0, t.find('\n')));
    }
  }
  const fs::path root =
      fs::path(hub_cache_dir(access)) / ("models--" + repo_id.substr(0, repo_id.find('/')) + "--" +
                                         repo_id.substr(repo_id.find('/') + 1));
  // The commit and the repository's files.
  const std::string api = hub.endpoint + "/api/models/" + repo_id + "/revision/" + revision;
  const Response info = hub.request(api, false, true);
  if (!info.error.empty() || info.status != 200)
    hub.fail(info, "'" + repo_id + "' at revision '" + revision + "'", api);
  nlohmann::json j;
  try {
    j = parse_json(info.body, api);
  } catch (const InvalidArgumentError& e) {
    throw Error(e.what());
  }
  BGEVL_CHECK(j.is_object() && j.contains("sha") && j["sha"].is_string(), Error, api,
              ": the hub's answer has no commit (\"sha\")");
  const std::string commit = j["sha"].get<std::string>();
  BGEVL_CHECK(std::regex_match(commit, std::regex("^[0-9a-f]{40}$")), Error, api,
              ": not a commit hash: ", commit);
  std::vector<std::string> files;
  if (j.contains("siblings") && j["siblings"].is_array())
    for (const auto& s : j["siblings"])
      if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string() &&
          wanted(s["rfilename"].get<std::string>()))
        files.push_back(s["rfilename"].get<std::string>());
  const auto has = [&](const std::string& f) {
    return std::find(files.begin(), files.end(), f) != files.end();
  };
  BGEVL_CHECK(has("config.json"), FileNotFoundError, "'", repo_id, "' at ", revision,
              " has no config.json: not a model bgevl can load");
  BGEVL_CHECK(has("model.safetensors") || has("model.safetensors.index.json"), FileNotFoundError,
              "'", repo_id, "' at ", revision,
              " has no safetensors weights (model.safetensors or model.safetensors.index.json): "
              "bgevl reads safetensors only");
  for (const auto& f : files) download_file(hub, root, commit, f, access);
  // The shards the index names.
  if (has("model.safetensors.index.json")) {
    const std::string index_path =
        (root / "snapshots" / commit / "model.safetensors.index.json").string();
    const ShardIndex idx =
        parse_shard_index(read_file(index_path, kMaxJsonFileBytes, "shard index"), index_path);
    const std::set<std::string> shards(idx.shards.begin(), idx.shards.end());
    for (const auto& s : shards) {
      BGEVL_CHECK(s.find('/') == std::string::npos && s.find("..") == std::string::npos, Error,
                  repo_id, ": the shard name '", s, "' is not a file name");
      download_file(hub, root, commit, s, access);
    }
  }
  if (revision != commit) {
    fs::create_directories(root / "refs");
    const fs::path ref = root / "refs" / revision;
    fs::create_directories(ref.parent_path());  // refs/pr/1
    write_file_atomic(ref.string(), commit);
  }
  return (root / "snapshots" / commit).string();
}

#endif  // BGEVL_WITH_CURL

}  // namespace bgevl::io
