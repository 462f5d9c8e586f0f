// bgevl command line: encode, the retrieval commands (cli_index.cpp): index, search, evaluate,
// dataset, and the server (cli_serve.cpp): serve.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bgevl/bgevl.h"
#include "cli_common.h"
#include "io/npy.h"

namespace {

using bgevl::cli::UsageError;

const char* kUsage = R"(usage: bgevl encode --model DIR_OR_ID [--image PATH]... [--images-from FILE]
                    [--text STR]... --out FILE.npy [options]
       bgevl index --model M --images DIR_OR_MANIFEST --out INDEX_DIR [options]
       bgevl search --index INDEX_DIR [--image Q | --query-id ID] [--text T] [-k K] [options]
       bgevl evaluate --index INDEX_DIR --queries QUERIES.jsonl [-k 1,5,10] [options]
       bgevl dataset circo|cirr|fashioniq --root DIR --split SPLIT --out DIR
       bgevl serve --model M [--index INDEX_DIR] [--host H] [--port P] [options]
       bgevl COMMAND --help | bgevl --version

Encodes images, texts, or composed (image, text) pairs with a BGE-VL model (CLIP or MLLM, told
apart by its config.json) and writes the L2-normalised embeddings as a float32 [N, D] .npy file
(numpy.load reads it), and beside it FILE.jsonl, one line per row: {"row": 0, "image": ...,
"text": ...}.

  --model DIR_OR_ID   checkpoint folder, or a hub id (BAAI/BGE-VL-base): from the Hugging Face
                      cache, downloaded into it when absent (HF_ENDPOINT, HF_TOKEN honoured)
  --revision REV      branch, tag or commit of a hub id (default main)
  --cache-dir DIR     the hub cache (default $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub)
  --local-files-only  never download (as HF_HUB_OFFLINE=1)
  --image PATH        an image file (repeatable): JPEG, PNG, BMP, WebP, TIFF
  --images-from FILE  image files listed one per line (in order among the --image ones)
  --text STR          a text (repeatable)
                      images only, texts only, or as many texts as images (composed queries)
  --out FILE.npy      where the embeddings go (checked before anything is computed)
  --device DEV        cpu (default), cuda, cuda:N
  --dtype T           float32, bfloat16, float16 (CUDA only); default: float32 on the CPU
                      (exact, as the reference), bfloat16 on CUDA
  --batch-size N      items per forward pass (default: the model's, 32 for CLIP, 8 for MLLM)
  --threads N         CPU threads (default: every core; at most the machine's cores)
  --force-threads     allow --threads above the machine's cores
  --truncate          CLIP: cut texts longer than 77 tokens instead of failing
  --q-or-c Q          MLLM, required there: q (query) or c (candidate) prompt
  --instruction STR   MLLM: the query's task instruction; "cir" stands for the model card's
                      composed-image-retrieval instruction
  --quiet             no progress on stderr

Exit status: 0 on success, 2 on a usage error, 1 on any other error (message on stderr).
)";

std::vector<std::string> read_list(const std::string& path) {
  std::istringstream in(bgevl::io::read_file(path, bgevl::io::kMaxFileBytes, "--images-from list"));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  if (out.empty()) throw UsageError("--images-from: " + path + " lists no files");
  return out;
}

// FILE.npy -> FILE.jsonl (FILE.npy.jsonl when the name does not end in .npy).
std::string rows_path(const std::string& out) {
  const std::string ext = ".npy";
  if (out.size() > ext.size() && out.compare(out.size() - ext.size(), ext.size(), ext) == 0)
    return out.substr(0, out.size() - ext.size()) + ".jsonl";
  return out + ".jsonl";
}

int encode(int argc, char** argv) {
  bgevl::cli::ModelArgs m;
  std::string out;
  std::vector<std::string> image_paths, texts;
  bgevl::EncodeOptions eo;
  bool quiet = false;
  std::optional<std::string> q_or_c, instruction;
  for (bgevl::cli::Args args(argc, argv, 2); args.next();) {
    const std::string a = args.arg();
    auto value = [&] { return args.value(); };
    auto number = [&](long long lo, long long hi) { return args.number(lo, hi); };
    if (m.parse(args)) continue;
    if (a == "--image")
      image_paths.push_back(value());
    else if (a == "--images-from")
      for (auto& p : read_list(value())) image_paths.push_back(p);
    else if (a == "--text")
      texts.push_back(value());
    else if (a == "--out")
      out = value();
    else if (a == "--batch-size")
      eo.batch_size = number(1, 1 << 20);
    else if (a == "--truncate")
      eo.truncate = true;
    else if (a == "--q-or-c")
      q_or_c = value();
    else if (a == "--instruction")
      instruction = value();
    else if (a == "--quiet")
      quiet = true;
    else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else
      throw UsageError("unknown argument '" + a + "'");
  }
  if (m.model.empty()) throw UsageError("--model is required");
  if (out.empty()) throw UsageError("--out is required");
  if (image_paths.empty() && texts.empty()) throw UsageError("give at least one --image or --text");
  if (!image_paths.empty() && !texts.empty() && image_paths.size() != texts.size())
    throw UsageError("composed queries need as many --text as images (got " +
                     std::to_string(image_paths.size()) + " images, " +
                     std::to_string(texts.size()) + " texts)");
  bgevl::Prompt prompt;
  if (q_or_c) prompt.role = bgevl::parse_role(*q_or_c);
  if (instruction)
    prompt.instruction =
        *instruction == "cir" ? bgevl::kComposedRetrievalInstruction : *instruction;
  bgevl::parse_device(m.device);  // bad values fail before anything is opened or loaded
  bgevl::parse_dtype(m.dtype);
  std::vector<bgevl::ImageInput> images;
  for (const auto& p : image_paths) images.push_back(bgevl::ImageInput::path(p));
  const auto items = bgevl::make_items(images, texts, prompt);

  // The outputs are opened now: a folder that does not exist fails before the model loads. The
  // row list goes beside a file, not beside a device or a pipe (/dev/stdout).
  bgevl::io::AtomicFile npy(out);
  std::unique_ptr<bgevl::io::AtomicFile> rows;
  if (!npy.in_place()) rows = std::make_unique<bgevl::io::AtomicFile>(rows_path(out));

  const auto embedder = m.load("", "");
  if (!quiet)
    eo.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rencoded %lld/%lld", static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done == total) std::fputc('\n', stderr);
    };
  const torch::Tensor emb = embedder->encode(items, eo);

  bgevl::io::write_npy(npy, emb);
  for (size_t i = 0; rows && i < items.size(); ++i) {
    nlohmann::ordered_json row = {{"row", i}};
    if (!image_paths.empty()) row["image"] = image_paths[i];
    if (!texts.empty()) row["text"] = texts[i];
    rows->write(row.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
  }
  if (rows) rows->commit();
  npy.commit();
  std::cerr << "wrote embeddings of shape [" << emb.size(0) << ", " << emb.size(1) << "] to " << out
            << (rows ? " (rows listed in " + rows->path() + ")" : std::string()) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw UsageError("no command given");
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd == "--version") {
      std::cout << "bgevl " << bgevl::version() << "\n";
      return 0;
    }
    if (cmd == "encode") return encode(argc, argv);
    if (cmd == "index") return bgevl::cli::index_main(argc, argv);
    if (cmd == "search") return bgevl::cli::search_main(argc, argv);
    if (cmd == "evaluate") return bgevl::cli::evaluate_main(argc, argv);
    if (cmd == "dataset") return bgevl::cli::dataset_main(argc, argv);
#ifdef BGEVL_WITH_SERVER
    if (cmd == "serve") return bgevl::cli::serve_main(argc, argv);
#else
    if (cmd == "serve")
      throw std::runtime_error(
          "this bgevl was built without the server (cpp-httplib; Debian: "
          "libcpp-httplib-dev)");
#endif
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "bgevl: " << e.what() << "\n\n"
              << kUsage << "\nbgevl COMMAND --help tells more.\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bgevl: error: " << e.what() << "\n";
    return 1;
  }
}
