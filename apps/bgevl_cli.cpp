// bgevl command line: `bgevl encode --model DIR_OR_ID [--image PATH]... [--text STR]... --out FILE.npy`
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "bgevl/bgevl.h"

namespace {

const char* kUsage = R"(usage: bgevl encode --model DIR_OR_ID [--image PATH]... [--text STR]... --out FILE.npy [options]
       bgevl --version | --help

Encodes images, texts, or composed (image, text) pairs with a BGE-VL model (CLIP or MLLM, told
apart by its config.json) and writes the L2-normalised embeddings as a float32 [N, D] .npy file
(numpy.load reads it).

  --model DIR_OR_ID   checkpoint folder, or a hub id (BAAI/BGE-VL-base) in the local HF cache
  --image PATH        an image file (repeatable): JPEG, PNG, BMP, WebP, TIFF
  --text STR          a text (repeatable)
                      images only, texts only, or as many texts as images (composed queries)
  --out FILE.npy      where the embeddings go
  --device DEV        cpu (default), cuda, cuda:N
  --dtype T           float32 (default), float16, bfloat16
  --batch-size N      inputs per forward pass (default 32)
  --threads N         CPU threads (default: every core)
  --truncate          CLIP: cut texts longer than 77 tokens instead of failing
  --q-or-c Q          MLLM: q (query) or c (candidate, the default) prompt
  --instruction STR   MLLM: the query's task instruction; "cir" stands for the model card's
                      composed-image-retrieval instruction
  --quiet             no progress on stderr

Exit status: 0 on success, 2 on a usage error, 1 on any other error (message on stderr).
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void write_npy(const std::string& path, const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(c.size(0)) + ", " + std::to_string(c.size(1)) + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw bgevl::FileNotFoundError("cannot write " + path);
  const char magic[] = "\x93NUMPY\x01\x00";
  out.write(magic, 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  out.put(static_cast<char>(len & 0xff));
  out.put(static_cast<char>(len >> 8));
  out << header;
  out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
  if (!out) throw bgevl::Error("failed writing " + path);
}

int encode(int argc, char** argv) {
  std::string model, out, device = "cpu", dtype = "float32";
  std::vector<bgevl::ImageInput> images;
  std::vector<std::string> texts;
  bgevl::EncodeOptions eo;
  int threads = 0;
  bool quiet = false;
  std::string q_or_c = "c";
  std::optional<std::string> instruction;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& v) {
      try {
        size_t used = 0;
        const long n = std::stol(v, &used);
        if (used != v.size() || n < 0) throw std::invalid_argument(v);
        return n;
      } catch (const std::exception&) {
        throw UsageError(a + " needs a non-negative whole number, got '" + v + "'");
      }
    };
    if (a == "--model") model = value();
    else if (a == "--image") images.push_back(bgevl::ImageInput::path(value()));
    else if (a == "--text") texts.push_back(value());
    else if (a == "--out") out = value();
    else if (a == "--device") device = value();
    else if (a == "--dtype") dtype = value();
    else if (a == "--batch-size") eo.batch_size = number(value());
    else if (a == "--threads") threads = static_cast<int>(number(value()));
    else if (a == "--truncate") eo.truncate = true;
    else if (a == "--q-or-c") q_or_c = value();
    else if (a == "--instruction") instruction = value();
    else if (a == "--quiet") quiet = true;
    else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else throw UsageError("unknown argument '" + a + "'");
  }
  if (model.empty()) throw UsageError("--model is required");
  if (out.empty()) throw UsageError("--out is required");
  if (images.empty() && texts.empty()) throw UsageError("give at least one --image or --text");
  if (!images.empty() && !texts.empty() && images.size() != texts.size())
    throw UsageError("composed queries need as many --text as --image (got " +
                     std::to_string(images.size()) + " images, " + std::to_string(texts.size()) +
                     " texts)");
  bgevl::LoadOptions lo;
  lo.device = bgevl::parse_device(device);
  lo.dtype = bgevl::parse_dtype(dtype);
  lo.num_threads = threads;
  if (!quiet)
    eo.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rencoded %lld/%lld", static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done == total) std::fputc('\n', stderr);
    };
  torch::Tensor emb;
  if (bgevl::model_family(model) == bgevl::ModelFamily::Clip) {
    if (instruction || q_or_c != "c")
      throw UsageError("--q-or-c and --instruction are for BGE-VL-MLLM models");
    emb = bgevl::ClipEmbedder(model, lo).encode(images, texts, eo);
  } else {
    if (instruction && *instruction == "cir")
      instruction = bgevl::MllmEmbedder::kComposedRetrievalInstruction;
    emb = bgevl::MllmEmbedder(model, lo).encode(images, texts, q_or_c, instruction, eo);
  }
  write_npy(out, emb);
  std::cout << "wrote embeddings of shape [" << emb.size(0) << ", " << emb.size(1) << "] to " << out
            << "\n";
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
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "bgevl: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bgevl: error: " << e.what() << "\n";
    return 1;
  }
}
