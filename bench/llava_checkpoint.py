"""Random-weight LLaVA-NeXT (BGE-VL-MLLM) checkpoints of any size, written tensor by tensor.

write_random_llava(folder, ...) writes config.json, preprocessor_config.json, the tokenizer files
(when a Mistral tokenizer.model is given) and the weights as `shards` half-precision safetensors
shards + model.safetensors.index.json, with the tensor names of a real BGE-VL-MLLM checkpoint
(lm_head included). Full size (the defaults) is 7.57B parameters, ~15 GB. Each tensor is made and
written on its own, so memory stays at one tensor. Values: N(0, 0.5^2 / fan_in) for matrices,
1 + N(0, 0.02^2) for norm weights, small biases; deterministic per (seed, name).
"""
import json
import os
import struct
import sys
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


def shapes(text_layers=32, hidden=4096, inter=14336, heads=32, kv_heads=8, vocab=32064,
           vision_layers=24, v_hidden=1024, v_inter=4096, image=336, patch=14):
    s = {}
    v = "vision_tower.vision_model."
    s[v + "embeddings.class_embedding"] = (v_hidden,)
    s[v + "embeddings.patch_embedding.weight"] = (v_hidden, 3, patch, patch)
    s[v + "embeddings.position_embedding.weight"] = ((image // patch) ** 2 + 1, v_hidden)
    for n in ("pre_layrnorm", "post_layernorm"):
        s[v + n + ".weight"] = s[v + n + ".bias"] = (v_hidden,)
    for i in range(vision_layers):
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"], s[p + f"self_attn.{proj}.bias"] = (v_hidden, v_hidden), (v_hidden,)
        for ln in ("layer_norm1", "layer_norm2"):
            s[p + ln + ".weight"] = s[p + ln + ".bias"] = (v_hidden,)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = (v_inter, v_hidden), (v_inter,)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = (v_hidden, v_inter), (v_hidden,)
    s["multi_modal_projector.linear_1.weight"], s["multi_modal_projector.linear_1.bias"] = (hidden, v_hidden), (hidden,)
    s["multi_modal_projector.linear_2.weight"], s["multi_modal_projector.linear_2.bias"] = (hidden, hidden), (hidden,)
    s["image_newline"] = (hidden,)
    m = "language_model.model."
    s[m + "embed_tokens.weight"] = (vocab, hidden)
    hd = hidden // heads
    for i in range(text_layers):
        p = f"{m}layers.{i}."
        s[p + "self_attn.q_proj.weight"] = (heads * hd, hidden)
        s[p + "self_attn.k_proj.weight"] = (kv_heads * hd, hidden)
        s[p + "self_attn.v_proj.weight"] = (kv_heads * hd, hidden)
        s[p + "self_attn.o_proj.weight"] = (hidden, heads * hd)
        s[p + "mlp.gate_proj.weight"] = s[p + "mlp.up_proj.weight"] = (inter, hidden)
        s[p + "mlp.down_proj.weight"] = (hidden, inter)
        s[p + "input_layernorm.weight"] = s[p + "post_attention_layernorm.weight"] = (hidden,)
    s[m + "norm.weight"] = (hidden,)
    s["language_model.lm_head.weight"] = (vocab, hidden)
    return s


def make_tensor(name, shape, seed, device):
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1000003 + zlib.crc32(name.encode())) % 2**63)
    z = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    if "norm" in name and leaf == "weight":
        return 1.0 + 0.02 * z
    if leaf == "bias" or name.endswith("class_embedding") or name == "image_newline":
        return 0.02 * z
    if name.endswith("position_embedding.weight") or name.endswith("embed_tokens.weight"):
        return 0.5 * z
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return z * (0.5 / fan_in ** 0.5)


def _write_shard(path, names, all_shapes, seed, device, dtype):
    st = {torch.float16: "F16", torch.bfloat16: "BF16"}[dtype]
    header, offset = {}, 0
    for n in names:
        numel = 1
        for d in all_shapes[n]:
            numel *= d
        header[n] = {"dtype": st, "shape": list(all_shapes[n]), "data_offsets": [offset, offset + 2 * numel]}
        offset += 2 * numel
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for n in names:
            t = make_tensor(n, all_shapes[n], seed, device).to(dtype).cpu().contiguous()
            f.write(t.view(torch.int16).numpy().tobytes())
    return offset


def write_random_llava(folder, text_layers=32, vision_layers=24, shards=4, seed=0, device="cpu",
                       dtype=torch.float16, tokenizer_model=None, legacy=True, **geometry):
    os.makedirs(folder, exist_ok=True)
    all_shapes = shapes(text_layers=text_layers, vision_layers=vision_layers, **geometry)
    g = dict(hidden=4096, inter=14336, heads=32, kv_heads=8, vocab=32064, v_hidden=1024, v_inter=4096,
             image=336, patch=14)
    g.update(geometry)
    config = {
        "architectures": ["LLaVANextForEmbedding"],
        "auto_map": {"AutoModel": "modeling_llavanext_for_embedding.LLaVANextForEmbedding"},
        "model_type": "llava_next", "ignore_index": -100, "image_token_index": 32000,
        "image_grid_pinpoints": PINPOINTS, "image_seq_length": 576, "projector_hidden_act": "gelu",
        "tie_word_embeddings": False, "torch_dtype": "float16", "use_image_newline_parameter": True,
        "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
        "text_config": {"model_type": "mistral", "architectures": ["MistralForCausalLM"],
                        "hidden_size": g["hidden"], "intermediate_size": g["inter"],
                        "num_hidden_layers": text_layers, "num_attention_heads": g["heads"],
                        "num_key_value_heads": g["kv_heads"], "vocab_size": g["vocab"],
                        "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "rope_theta": 1000000.0,
                        "sliding_window": None, "hidden_act": "silu", "torch_dtype": "float16"},
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": g["v_hidden"],
                          "intermediate_size": g["v_inter"], "num_hidden_layers": vision_layers,
                          "num_attention_heads": g["v_hidden"] // 64, "image_size": g["image"],
                          "patch_size": g["patch"], "projection_dim": 768, "hidden_act": "quick_gelu",
                          "layer_norm_eps": 1e-5, "vocab_size": 32000},
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({"crop_size": {"height": 336, "width": 336}, "do_center_crop": True, "do_convert_rgb": True,
                   "do_normalize": True, "do_pad": True, "do_rescale": True, "do_resize": True,
                   "image_grid_pinpoints": PINPOINTS, "image_mean": MEAN, "image_std": STD,
                   "image_processor_type": "LlavaNextImageProcessor", "processor_class": "LlavaNextProcessor",
                   "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}},
                  f, indent=2)
    if tokenizer_model:
        import mistral_tokenizer_files

        mistral_tokenizer_files.write_tokenizer_files(folder, tokenizer_model, legacy)
    names = list(all_shapes)
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for k in range(shards):
        part = names[k * per:(k + 1) * per]
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        total += _write_shard(os.path.join(folder, fname), part, all_shapes, seed, device, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return total
