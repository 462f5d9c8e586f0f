// convert_dataset: CIRCO, CIRR and FashionIQ from their published folder layouts into a gallery
// manifest and a queries file (evaluate.h).
//
//   CIRCO      ROOT/annotations/{val,test}.json,
//              ROOT/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json,
//              ROOT/COCO2017_unlabeled/unlabeled2017/<file_name>
//   CIRR       ROOT/[cirr/]captions/cap.rc2.<split>.json, ROOT/[cirr/]image_splits/split.rc2.
//              <split>.json (name -> "./dev/<name>.png", relative to ROOT)
//   FashionIQ  ROOT/captions/cap.<category>.<split>.json, ROOT/image_splits/split.<category>.
//              <split>.json, ROOT/images/<name>.png (or .jpg)
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "bgevl/errors.h"
#include "bgevl/evaluate.h"
#include "io/json.h"
#include "io/npy.h"

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace bgevl {

namespace {

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n";
}

std::string id_string(const nlohmann::json& v, const std::string& where) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  throw InvalidArgumentError(where + ": an id is neither a string nor an integer");
}

std::string need_str(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  BGEVL_CHECK_ARG(it != j.end() && it->is_string(), where, ": \"", key,
                  "\" missing or not a string");
  return it->get<std::string>();
}

std::string first_existing(const std::vector<fs::path>& candidates) {
  for (const auto& c : candidates)
    if (fs::exists(c)) return c.string();
  std::string all;
  for (const auto& c : candidates) all += (all.empty() ? "" : " or ") + c.string();
  throw FileNotFoundError("not found: " + all);
}

struct Out {
  std::string gallery, queries;
  int64_t n_gallery = 0, n_queries = 0;
};

void circo(const fs::path& root, const std::string& split, Out& out) {
  BGEVL_CHECK_ARG(split == "val" || split == "test", "CIRCO splits are val and test, got '", split,
                  "'");
  const fs::path coco = root / "COCO2017_unlabeled";
  const std::string info = first_existing({coco / "annotations" / "image_info_unlabeled2017.json"});
  const auto images = io::read_json_file(info);
  BGEVL_CHECK_ARG(images.is_object() && images.contains("images") && images["images"].is_array(),
                  info, ": no \"images\" list");
  for (const auto& im : images["images"]) {
    const std::string id = id_string(im.value("id", nlohmann::json()), info);
    const std::string file = need_str(im, "file_name", info);
    out.gallery +=
        dump({{"id", id}, {"path", fs::absolute(coco / "unlabeled2017" / file).string()}});
    ++out.n_gallery;
  }
  const std::string ann = first_existing({root / "annotations" / (split + ".json")});
  const auto qs = io::read_json_file(ann);
  BGEVL_CHECK_ARG(qs.is_array(), ann, ": not a list of queries");
  for (const auto& q : qs) {
    BGEVL_CHECK_ARG(q.is_object(), ann, ": a query is not an object");
    ojson line;
    line["image"] = nullptr;
    line["query_id"] = id_string(q.value("reference_img_id", nlohmann::json()), ann);
    line["text"] = "Find a picture that also " + need_str(q, "shared_concept", ann) + ", but " +
                   need_str(q, "relative_caption", ann);
    line["instruction"] = nullptr;
    auto targets = ojson::array();
    if (q.contains("gt_img_ids"))
      for (const auto& t : q["gt_img_ids"]) targets.push_back(id_string(t, ann));
    line["targets"] = targets;
    line["qid"] = id_string(q.value("id", nlohmann::json()), ann);
    out.queries += dump(line);
    ++out.n_queries;
  }
}

void cirr(const fs::path& root, const std::string& split, Out& out) {
  BGEVL_CHECK_ARG(split == "val" || split == "test1" || split == "train",
                  "CIRR splits are val, test1 and train, got '", split, "'");
  const fs::path base = fs::exists(root / "cirr" / "captions") ? root / "cirr" : root;
  const std::string images_file =
      first_existing({base / "image_splits" / ("split.rc2." + split + ".json")});
  const auto images = io::read_json_file(images_file);
  BGEVL_CHECK_ARG(images.is_object(), images_file, ": not an object (name -> path)");
  for (const auto& [name, rel] : images.items()) {
    BGEVL_CHECK_ARG(rel.is_string(), images_file, ": the path of ", name, " is not a string");
    out.gallery +=
        dump({{"id", name},
              {"path", fs::absolute(root / rel.get<std::string>()).lexically_normal().string()}});
    ++out.n_gallery;
  }
  const std::string caps = first_existing({base / "captions" / ("cap.rc2." + split + ".json")});
  const auto qs = io::read_json_file(caps);
  BGEVL_CHECK_ARG(qs.is_array(), caps, ": not a list of queries");
  for (const auto& q : qs) {
    BGEVL_CHECK_ARG(q.is_object(), caps, ": a query is not an object");
    const std::string ref = need_str(q, "reference", caps);
    ojson line;
    line["image"] = nullptr;
    line["query_id"] = ref;
    line["text"] = need_str(q, "caption", caps);
    line["instruction"] = nullptr;
    auto targets = ojson::array();
    if (q.contains("target_hard") && q["target_hard"].is_string())
      targets.push_back(q["target_hard"].get<std::string>());
    line["targets"] = targets;
    line["exclude"] = ojson::array({ref});
    auto subset = ojson::array();
    if (q.contains("img_set") && q["img_set"].is_object() && q["img_set"].contains("members"))
      for (const auto& m : q["img_set"]["members"])
        if (m.is_string() && m.get<std::string>() != ref) subset.push_back(m.get<std::string>());
    line["subset"] = subset;
    line["qid"] = id_string(q.value("pairid", nlohmann::json()), caps);
    out.queries += dump(line);
    ++out.n_queries;
  }
}

// CLIP4Cir's joining of FashionIQ's two captions.
std::string strip(const std::string& s) {
  const std::string chars = ".?, ";
  const auto a = s.find_first_not_of(chars);
  if (a == std::string::npos) return "";
  const auto b = s.find_last_not_of(chars);
  return s.substr(a, b - a + 1);
}

void fashioniq(const fs::path& root, const std::string& split, Out& out) {
  BGEVL_CHECK_ARG(split == "val" || split == "test" || split == "train",
                  "FashionIQ splits are val, test and train, got '", split, "'");
  std::unordered_set<std::string> seen;
  for (const std::string cat : {"dress", "shirt", "toptee"}) {
    const std::string images_file =
        first_existing({root / "image_splits" / ("split." + cat + "." + split + ".json")});
    const auto names = io::read_json_file(images_file);
    BGEVL_CHECK_ARG(names.is_array(), images_file, ": not a list of image names");
    for (const auto& n : names) {
      BGEVL_CHECK_ARG(n.is_string(), images_file, ": an image name is not a string");
      const std::string name = n.get<std::string>();
      if (!seen.insert(name).second) continue;
      fs::path p = root / "images" / (name + ".png");
      if (!fs::exists(p) && fs::exists(root / "images" / (name + ".jpg")))
        p = root / "images" / (name + ".jpg");
      out.gallery += dump({{"id", name}, {"path", fs::absolute(p).string()}, {"group", cat}});
      ++out.n_gallery;
    }
    const std::string caps =
        first_existing({root / "captions" / ("cap." + cat + "." + split + ".json")});
    const auto qs = io::read_json_file(caps);
    BGEVL_CHECK_ARG(qs.is_array(), caps, ": not a list of queries");
    int64_t i = 0;
    for (const auto& q : qs) {
      BGEVL_CHECK_ARG(q.is_object() && q.contains("captions") && q["captions"].is_array() &&
                          q["captions"].size() == 2,
                      caps, ": a query needs \"candidate\" and two \"captions\"");
      std::string c0 = strip(q["captions"][0].get<std::string>());
      const std::string c1 = strip(q["captions"][1].get<std::string>());
      if (!c0.empty()) {  // Python's str.capitalize(): first upper, the rest lower
        for (auto& ch : c0) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        c0[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(c0[0])));
      }
      ojson line;
      line["image"] = nullptr;
      line["query_id"] = need_str(q, "candidate", caps);
      line["text"] = c0 + " and " + c1;
      line["instruction"] = nullptr;
      auto targets = ojson::array();
      if (q.contains("target") && q["target"].is_string())
        targets.push_back(q["target"].get<std::string>());
      line["targets"] = targets;
      line["group"] = cat;
      line["qid"] = cat + ":" + std::to_string(i++);
      out.queries += dump(line);
      ++out.n_queries;
    }
  }
}

}  // namespace

std::pair<int64_t, int64_t> convert_dataset(const std::string& name, const std::string& root,
                                            const std::string& split, const std::string& out_dir) {
  BGEVL_CHECK(fs::is_directory(root), FileNotFoundError, root, ": no such dataset folder");
  Out out;
  if (name == "circo")
    circo(root, split, out);
  else if (name == "cirr")
    cirr(root, split, out);
  else if (name == "fashioniq")
    fashioniq(root, split, out);
  else
    throw InvalidArgumentError("unknown dataset '" + name + "' (circo, cirr, fashioniq)");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  BGEVL_CHECK(fs::is_directory(out_dir), Error, "cannot create ", out_dir);
  io::write_file_atomic((fs::path(out_dir) / "gallery.jsonl").string(), out.gallery);
  io::write_file_atomic((fs::path(out_dir) / "queries.jsonl").string(), out.queries);
  return {out.n_gallery, out.n_queries};
}

}  // namespace bgevl
