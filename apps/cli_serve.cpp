// bgevl serve: a thin layer over src/server/server.h.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>

#include "bgevl/index.h"
#include "cli_common.h"
#include "server/server.h"

namespace bgevl::cli {

namespace {

const char* kServeUsage =
    R"(usage: bgevl serve --model M [--index INDEX_DIR] [--host 127.0.0.1] [--port 8080]
                   [--max-batch N] [--max-wait-ms T] [--api-key KEY] [--allow-file-paths DIR]

Serves one model (and one index) over HTTP: POST /v1/embeddings (OpenAI's form, and vLLM's
chat form with an image and a text), POST /v1/search (with --index), GET /health, GET /metrics
(Prometheus), GET / (a search page), GET /v1/images/{id}. Concurrent requests are batched
together. SIGINT or SIGTERM: the requests in flight are answered, then exit 0.

  --model M              checkpoint folder or hub id (default with --index: the index's model)
  --index INDEX_DIR      an index built by `bgevl index`: enables /v1/search and the page
  --host H               address to listen on (default 127.0.0.1: this machine only)
  --port P               port (default 8080; 0: any free port, printed)
  --max-batch N          items per model batch (default: the model's batch size; 1: no batching)
  --max-wait-ms T        how long a batch waits for more requests (default 5)
  --api-key KEY          require "Authorization: Bearer KEY" (also from BGEVL_API_KEY)
  --allow-file-paths DIR image inputs may be file paths, inside DIR only (default: data URIs only)
  --max-body-bytes N     larger request bodies get 413 (default 67108864)
  --max-image-pixels N   larger images get 400 (default 89478485, PIL's MAX_IMAGE_PIXELS)
  --max-items N          inputs per /v1/embeddings request (default 2048)
  --http-threads N       connections served at once (default 128)
  --model-name NAME      "model" in responses (default: the model folder's name)
  --device, --dtype, --threads, --revision   as for bgevl encode
  --quiet                no request log on stderr
)";

}  // namespace

int serve_main(int argc, char** argv) {
  ModelArgs m;
  std::string index_dir;
  server::ServerOptions o;
  if (const char* key = std::getenv("BGEVL_API_KEY")) o.api_key = key;
  for (Args a(argc, argv, 2); a.next();) {
    const std::string s = a.arg();
    if (m.parse(a)) continue;
    if (s == "--index")
      index_dir = a.value();
    else if (s == "--host")
      o.host = a.value();
    else if (s == "--port")
      o.port = static_cast<int>(a.number(0, 65535));
    else if (s == "--max-batch")
      o.max_batch = a.number(1, 1 << 16);
    else if (s == "--max-wait-ms")
      o.max_wait_ms = static_cast<double>(a.number(0, 60000));
    else if (s == "--api-key")
      o.api_key = a.value();
    else if (s == "--allow-file-paths")
      o.allow_file_paths = a.value();
    else if (s == "--max-body-bytes")
      o.max_body_bytes = static_cast<size_t>(a.number(1024, 1LL << 34));
    else if (s == "--max-image-pixels")
      o.max_image_pixels = a.number(1, 1LL << 40);
    else if (s == "--max-items")
      o.max_items = a.number(1, 1 << 20);
    else if (s == "--http-threads")
      o.http_threads = static_cast<int>(a.number(1, 4096));
    else if (s == "--model-name")
      o.model_name = a.value();
    else if (s == "--quiet")
      o.quiet = true;
    else if (s == "--help" || s == "-h") {
      std::cout << kServeUsage;
      return 0;
    } else
      throw UsageError("serve: unknown argument '" + s + "'");
  }
  if (m.model.empty() && index_dir.empty()) throw UsageError("serve: --model is required");
  std::optional<Index> index;
  if (!index_dir.empty()) index.emplace(Index::open(index_dir));
  const auto model = index ? m.load(index->model_ref(), index->revision()) : m.load("", "");
  o.on_ready = [&](int port) {
    std::fprintf(stderr, "bgevl serve: %s on http://%s:%d%s\n", model->model_dir().c_str(),
                 o.host.c_str(), port, index ? (" with index " + index_dir).c_str() : "");
    std::printf("listening on http://%s:%d\n", o.host.c_str(), port);
    std::fflush(stdout);
  };
  return server::serve(*model, index ? &*index : nullptr, o);
}

}  // namespace bgevl::cli
