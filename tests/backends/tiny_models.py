"""Tiny randomly initialised models of the real architectures, saved the way users' weights are.

They exercise the real loading code paths (local folders / files, ``from_pretrained``) without a
model hub. Their outputs are meaningless: they are for tests only.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
TINY_OPEN_CLIP_NAME = "repainter-tiny-clip"


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A hand-written CLIP BPE vocabulary: the two special tokens and single letters."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    for c in letters:
        vocab[c] = len(vocab)
    for c in letters:
        vocab[c + "</w>"] = len(vocab)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab))
    merges_file.write_text("#version: 0.2\n")
    return vocab_file, merges_file


def build_tiny_sd_pipeline(folder: Path) -> Path:
    """A tiny StableDiffusionPipeline (32x32 images) saved with ``save_pretrained``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab_file, merges_file = write_clip_tokenizer_files(folder / "_tok")
    # from_pretrained reads vocab.json / merges.txt with transformers 4.x and 5.x alike
    tokenizer = CLIPTokenizer.from_pretrained(str(vocab_file.parent), model_max_length=16)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4, sample_size=32,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(tokenizer),
        max_position_embeddings=16,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    out = folder / "tiny-sd"
    pipe.save_pretrained(out)
    return out


def build_tiny_open_clip(folder: Path) -> Path:
    """A tiny open_clip CLIP checkpoint (state dict) of :data:`TINY_OPEN_CLIP`."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**TINY_OPEN_CLIP)
    path = folder / "tiny_open_clip.pt"
    torch.save(model.state_dict(), path)
    return path


def build_tiny_dinov2(folder: Path) -> Path:
    """A tiny Dinov2Model with its image processor, saved with ``save_pretrained``."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=37, image_size=32, patch_size=8)
    model = Dinov2Model(config)
    processor = BitImageProcessor(
        do_resize=True, size={"shortest_edge": 36}, do_center_crop=True,
        crop_size={"height": 32, "width": 32}, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    out = folder / "tiny-dinov2"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def build_random_alexnet_checkpoint(folder: Path) -> Path:
    """A torchvision AlexNet state dict with random weights (the file format of the real one)."""
    import torch
    from torchvision.models import alexnet

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    path = folder / "alexnet-random.pth"
    torch.save(alexnet(weights=None).state_dict(), path)
    return path


# -- session fixtures (import them into a test module to use them) ------------------------------


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_open_clip_checkpoint(tmp_path_factory) -> Path:
    pytest.importorskip("open_clip")
    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def tiny_dinov2_path(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    return build_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2"))


# -- hang guard -------------------------------------------------------------------------------------

#: Offline, a missing weight must fail at once rather than after network time-outs. This bound only
#: catches a hang (a hub client retrying for minutes); it is no speed target.
HANG_GUARD_SECONDS = 60


@contextmanager
def fails_fast():
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < HANG_GUARD_SECONDS, f"took {elapsed:.0f} s: a hang, not an offline failure"


TINY_CLIP_WORDS = ["<|startoftext|>", "<|endoftext|>", "<unk>", "a", "flat", "illustration", "red", "blue",
         "green", "yellow", "circle", "square", "star", "background", "large", "small"]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A word-level Hugging Face tokenizer whose ids fit the tiny model's 64-token vocabulary."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TINY_CLIP_WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|startoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", model_max_length=16)
    folder = tmp_path_factory.mktemp("tiny-tok")
    fast.save_pretrained(folder)
    return str(folder)


def build_tiny_sd_lora(pipeline_folder: Path, folder: Path) -> Path:
    """A random LoRA (peft, rank 4) for the tiny SD UNet, saved with ``save_lora_weights``."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(pipeline_folder / "unet")
    torch.manual_seed(1)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # large enough to change a 2-step render visibly
        for name, param in unet.named_parameters():
            if "lora_B" in name:
                param.mul_(50.0)
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_sd_lora_path(tiny_sd_path, tmp_path_factory) -> Path:
    pytest.importorskip("peft")
    return build_tiny_sd_lora(tiny_sd_path, tmp_path_factory.mktemp("tiny-lora"))


def build_tiny_flux_pipeline(folder: Path) -> Path:
    """A tiny FluxPipeline (FLUX.1-schnell's layout: no guidance embedding), saved to disk.

    CLIP and T5 tokenizers are hand-written vocabularies (no hub download); the VAE has a scale
    factor of 2, so FLUX's rounding of sizes (to multiples of 2 * scale) shows at tiny sizes.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        T5Config,
        T5EncoderModel,
        T5TokenizerFast,
    )

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    t5_tokenizer = T5TokenizerFast(vocab=pieces + [(c, -1.0) for c in "▁abcdefghijklmnopqrstuvwxyz"],
                                   extra_ids=0)
    vocab_file, _ = write_clip_tokenizer_files(folder / "_tok")
    clip_tokenizer = CLIPTokenizer.from_pretrained(str(vocab_file.parent), model_max_length=16)
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=False)
    clip = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(clip_tokenizer),
        max_position_embeddings=16, projection_dim=32))
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), d_model=32, d_ff=37, d_kv=8,
                                 num_layers=2, num_heads=4, decoder_start_token_id=0))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 4),
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                        tokenizer=clip_tokenizer, text_encoder_2=t5, tokenizer_2=t5_tokenizer,
                        transformer=transformer)
    out = folder / "tiny-flux"
    pipe.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_flux_path(tmp_path_factory) -> Path:
    pytest.importorskip("diffusers")
    return build_tiny_flux_pipeline(tmp_path_factory.mktemp("tiny-flux"))


# -- single-file checkpoints --------------------------------------------------------------------
# The original Stable Diffusion (LDM) key layout, written from the diffusers layout so that
# ``from_single_file`` can be exercised offline on the tiny pipeline.


def _ldm_resnet(rest: str) -> str:
    """A diffusers resnet parameter name in the LDM layout."""
    for hf, sd in (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                   ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
                   ("conv_shortcut", "skip_connection")):
        if rest.startswith(hf + "."):
            return sd + rest[len(hf):]
    return rest


def _unet_to_ldm(state, layers_per_block, up_attention):
    n = layers_per_block
    fixed = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "conv_norm_out.": "out.0.",
             "conv_out.": "out.2."}
    out = {}
    for key, value in state.items():
        new = None
        for hf, sd in fixed.items():
            if key.startswith(hf):
                new = sd + key[len(hf):]
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            b, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + b * (n + 1) + j}.0.{_ldm_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"input_blocks.{1 + int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{1 + int(m[1]) * (n + 1) + n}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m[1])}.{_ldm_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.0.{_ldm_resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.*)", key):
            new = f"output_blocks.{int(m[1]) * (n + 1) + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            b = int(m[1])
            new = f"output_blocks.{b * (n + 1) + n}.{2 if up_attention[b] else 1}.{m[2]}"
        if new is None:
            raise KeyError(key)
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(state, n_blocks):
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
                     lambda m: f"decoder.up.{n_blocks - 1 - int(m[1])}.block.{m[2]}.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                     lambda m: f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}.", new)
        new = new.replace("conv_shortcut", "nin_shortcut")
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            for hf, sd in (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."),
                           ("to_v.", "v."), ("to_out.0.", "proj_out.")):
                new = new.replace(hf, sd)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")):
                value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + new] = value
    return out


def build_tiny_sd_single_file(pipeline_folder: Path, folder: Path) -> Path:
    """The tiny SD pipeline as one original-layout ``.safetensors`` file (as civitai-style
    fine-tunes ship); load it with ``config=`` the pipeline folder (no hub lookup)."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_folder)
    up_attention = [bool(getattr(block, "attentions", None)) for block in pipe.unet.up_blocks]
    text = {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
            for k, v in pipe.text_encoder.state_dict().items()}
    state = {**_unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block,
                            up_attention),
             **_vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)),
             **text}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny-sd.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_sd_single_file(tiny_sd_path, tmp_path_factory) -> Path:
    return build_tiny_sd_single_file(tiny_sd_path, tmp_path_factory.mktemp("tiny-single"))
