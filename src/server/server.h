// `bgevl serve`: one model (and optionally one index) behind HTTP, with dynamic batching across
// concurrent requests. The routes, request and response shapes are in README.md ("Server").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "bgevl/embedder.h"
#include "bgevl/index.h"

namespace bgevl::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (on_ready tells which)
  int64_t max_batch = 0;         // items per model batch; 0: the model's default batch size
  double max_wait_ms = 5;        // how long a batch waits for more requests
  std::string api_key;           // non-empty: /v1/* and /metrics need "Authorization: Bearer KEY"
  std::string allow_file_paths;  // non-empty: image inputs may be paths inside this folder
  std::string model_name;        // "model" in responses (default: the model's folder)
  size_t max_body_bytes = 64u << 20;    // larger bodies: 413
  int64_t max_image_pixels = 89478485;  // PIL's MAX_IMAGE_PIXELS; larger images: 400
  int64_t max_items = 2048;             // inputs per /v1/embeddings request (OpenAI's limit)
  int64_t max_k = 1000;                 // results per /v1/search request
  int http_threads = 128;               // connections served at once
  bool quiet = false;                   // no request log on stderr
  // Called once the socket listens, with the port (before the first request is served).
  std::function<void(int port)> on_ready;
};

// Serves until SIGINT or SIGTERM (or stop_server()), then finishes the requests in flight and
// returns 0. `index` may be null (no /v1/search). Error (cannot bind, index of another model).
int serve(const Embedder& model, const Index* index, const ServerOptions& options);

// Asks a running serve() to stop, as SIGTERM does (async-signal-safe).
void stop_server();

}  // namespace bgevl::server
