"""Typed model configuration and the registry of named sizes (models/*.yaml)."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldscape_ros.errors import ConfigError
from worldscape_ros.fileio import read_yaml_mapping
from worldscape_ros.model.repeats_config import RepeatsConfig


def _models_dir() -> Path:
    """The folder of model configs and the shipped checkpoint: $WORLDSCAPE_MODELS, the source tree's models/,
    or share/worldscape_ros/models of the install prefix (colcon or pip data_files)."""
    env = os.environ.get('WORLDSCAPE_MODELS')
    if env:
        return Path(env)
    source = Path(__file__).resolve().parents[2] / 'models'
    if source.is_dir():
        return source
    # prefix/lib/pythonX.Y/site-packages/worldscape_ros/model/config.py: parents[5] is the install prefix
    for prefix in (Path(__file__).resolve().parents[5], Path(sys.prefix)):
        installed = prefix / 'share' / 'worldscape_ros' / 'models'
        if installed.is_dir():
            return installed
    return source


MODELS_DIR = _models_dir()


@dataclass(frozen=True)
class CodecConfig:
    latent_channels: int = 8
    spatial_down: int = 4  # power of two
    temporal_down: int = 1  # video frames folded into one latent frame
    width: int = 32
    # 'conv': ConvCodec; 'wan': the Wan2.1 causal video VAE (model/wan_codec.py, needs diffusers), width its
    # base_dim, dim_mult and res_blocks its other architecture settings (read by it alone)
    kind: str = 'conv'
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    res_blocks: int = 2


@dataclass(frozen=True)
class DiTConfig:
    dim: int = 256
    depth: int = 6
    heads: int = 4
    ffn: int = 768
    patch: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) over the latent
    camera_width: int = 128  # hidden width of the light camera encoder
    qk_norm: bool = True
    # 'worldscape': CausalDiT; 'wan': Wan2.1's transformer (model/wan.py) with the world model's additions
    # zero-initialised, so imported Wan weights compute what Wan computes. freq_dim, text_dim, text_len: its
    # sinusoidal timestep width and the fixed text embedding's shape (read by the 'wan' layout alone)
    layout: str = 'worldscape'
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512


@dataclass(frozen=True)
class ConditioningConfig:
    plucker: bool = True
    hands: bool = True  # pose-video tokens concatenated along the frame axis
    geometry: bool = True  # the accumulated scene rendered into the target camera
    pose_pool: int = 2  # pose-video latent average-pooled by this before the shared patch path
    # false: the pose video is added to the video tokens through a zero-initialised patch embedding instead of
    # joining the sequence (the 'wan' layout: extra tokens would change what a pretrained backbone computes)
    pose_tokens: bool = True


@dataclass(frozen=True)
class HeadsConfig:
    depth: bool = True
    gaussians: bool = True
    gaussian_layers: int = 2  # ViT aggregator blocks
    gaussian_stride: int = 4  # one Gaussian per stride x stride pixels
    # > 0: a second depth head, an MLP this wide, for the features of a denoising pass that writes the cache
    # (sampler.cache_from_last_step), whose input is noise beside the conditioning
    step_depth_hidden: int = 0
    # > 0: a start depth head, a small conv net this wide, that reads a reset's clean-pass features on the token
    # grid and the start image at full resolution (for a start without given depth; the linear head is blocky)
    start_depth_channels: int = 0
    # > 0: a step image depth head, the same conv net this wide, that reads a denoising pass's features on the
    # token grid and the output frame, a residual on the step depth head's depth (which is blocky: one MLP per token)
    step_image_depth_channels: int = 0


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 2  # causal student steps per chunk (plus one clean pass)
    teacher_steps: int = 12
    shift: float = 2.0  # timestep shift: t' = s t / (1 + (s - 1) t)
    rolling_window: int = 0  # chunks denoised together at staggered levels (0: off)
    # true: a chunk stepped alone keeps the keys, values and features of its last denoising pass instead of a
    # separate clean pass (one DiT pass fewer per frame)
    cache_from_last_step: bool = False


@dataclass(frozen=True)
class MemoryConfig:
    """The KV memory (memory.py): its three levels' budgets, the pool's gate and thinning, and what the model
    attends to and renders from it."""

    sink_chunks: int = 1  # the first chunks of the session, never evicted
    window_chunks: int = 2  # the most recent chunks (local sliding window)
    pool_chunks: int = 16  # global pool budget in chunks
    pool_bytes: int | None = None  # optional pool budget in bytes (payload nbytes summed)
    retrieve_chunks: int = 2  # at most this many pooled chunks join the context of the next chunk
    gate_distance_m: float = 0.25  # information-gain gate: a chunk is "explained" by a held one
    gate_angle_deg: float = 15.0  # whose camera is this near in position and view direction ...
    gate_content: float = 0.9  # ... and whose content summary has cosine similarity above this
    fps_angle_weight_m: float = 1.0  # metres per radian of view-direction difference in the FPS distance
    geometry_views: int = 6  # cached frames rendered into the target camera for geometric conditioning (training)
    # Retrieved pool chunks always feed the geometric guess; true: their cached keys also join the attention
    # context (the paper's memory). A model distilled on clips whose context held only the sink and the window
    # has never attended to retrieved chunks: false keeps its attention as trained.
    attend_pool: bool = True

    def __post_init__(self) -> None:
        for name in ('sink_chunks', 'window_chunks', 'pool_chunks', 'retrieve_chunks', 'geometry_views'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f'memory.{name} must be a non-negative int, got {value!r}')
        if self.pool_bytes is not None and (not isinstance(self.pool_bytes, int) or self.pool_bytes < 0):
            raise ConfigError(f'memory.pool_bytes must be None or a non-negative int, got {self.pool_bytes!r}')
        for name in ('gate_distance_m', 'gate_angle_deg', 'fps_angle_weight_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f'memory.{name} must be finite and >= 0, got {value!r}')
        if not -1.0 <= self.gate_content <= 1.0:
            raise ConfigError(f'memory.gate_content must be a cosine in [-1, 1], got {self.gate_content!r}')


_OPTIONAL_AT_DEFAULT: dict[str, dict[str, Any]] = {
    'codec': {'kind': 'conv', 'dim_mult': (1, 2, 4, 4), 'res_blocks': 2},
    'dit': {'layout': 'worldscape', 'freq_dim': 256, 'text_dim': 4096, 'text_len': 512},
    'conditioning': {'pose_tokens': True},
    'heads': {'start_depth_channels': 0, 'step_image_depth_channels': 0},  # heads that came later, off
    # the memory's gate, thinning and byte budget, once MemoryConfig's own defaults, joined the model config
    'memory': {'pool_bytes': None, 'gate_distance_m': 0.25, 'gate_angle_deg': 15.0, 'gate_content': 0.9,
               'fps_angle_weight_m': 1.0},
    'scene': {'commit_margin_px': 0.0, 'crack_px': 0, 'headlight': 0.0},  # later: off
    'refiner': {'hand_paint': 'region', 'show_under_hand': False, 'hand_refiner': False,  # the hand's, later: off
                'hand_feather': 2, 'start_hand': 'region', 'start_hand_margin_px': 3, 'fill': 'telea',
                'anchor_sigma': 0.0, 'anchor_reach_px': 0.0, 'anchor_prior': 0.0, 'fill_fade_px': 0.0,
                'detail_reach_px': 0.0},
}


@dataclass(frozen=True)
class SceneConfig:
    """The persistent scene memory (scene_memory.py): a voxel-deduplicated point store."""

    voxel_m: float = 0.002  # one point per voxel of this edge: finer than a pixel at 0.3 m, so no holes
    budget_mb: float = 16.0  # bytes its points may take
    supersample: int = 2  # sub-pixel points per pixel and axis at commit (no cracks up to this zoom)
    max_depth_m: float = 50.0  # farther pixels (sky, far-plane leaks) are not committed
    commit_imagined: bool = True  # what the model imagines joins the scene (revisits see it again)
    # Imagined pixels closer than this to an observed pixel of their frame (one without a hand) are not
    # committed: there each frame fills afresh from the real boundary beside them, where a strip committed a
    # frame before would be extended instead, its errors with it. A second look there is then filled anew, not
    # the same: fidelity for sameness (models/ws-tiny.md has both figures)
    commit_margin_px: float = 0.0
    # An empty pixel with observed pixels at most this far on both sides along its row or column is a crack in a
    # near observed surface, magnified past its points' spacing: imagined points (which fill what no observed
    # point covers) are not drawn there, since whatever shows through lies behind that surface; the crack is
    # left to the crack fill and the refiner. 0: imagined points fill every pixel no observed point covers
    crack_px: int = 0
    # The camera's share of the light on a surface it faces head-on (headlight.py): observed points hold how they
    # faced the camera that saw them and are lit again for each camera, so a wall seen head-on and then at a
    # glancing angle changes as the world's does. 0: colours rendered as held
    headlight: float = 0.0


IMAGINED_MODES = ('keep', 'propose', 'hide')
HAND_PAINTS = ('region', 'silhouette')
START_HANDS = ('region', 'silhouette')
FILLS = ('telea', 'far_side')


@dataclass(frozen=True)
class RefinerConfig:
    """The output refiner (refiner.py): writes what the scene render does not cover."""

    enabled: bool = False
    width: int = 32  # channels at half resolution; x2 and x3 at the two coarser levels
    dilations: tuple[int, ...] = (1, 2, 4)  # bottleneck convolutions at 1/8 resolution
    inpaint_radius: float = 3.0  # the smooth fill's (Telea) neighbourhood, pixels
    edge_band: int = 1  # pixels around holes the refiner may rewrite
    hand_margin: float = 1.5  # the hand's dynamic region: its keypoints' hull grown by this many finger widths
    # What the refiner does with the scene memory's imagined points: 'keep' them as rendered (a second look is
    # the first); 'propose': rewrite them, starting from them; 'hide': see observed points only and fill the
    # rest afresh each frame (imagined points then condition the DiT alone)
    imagined: str = 'keep'
    # true: the refiner also reads the start hand's colour painted over the hand's region (hands.hand_colour);
    # the keypoints alone say where the hand is, never what it looks like
    hand_colour: bool = False
    # where that colour is painted: the hand's whole 'region' (its keypoints' hull and margin), or its
    # 'silhouette' (a capsule per bone at a finger's width, the palm's polygon: hands.hand_silhouette)
    hand_paint: str = 'region'
    # true: the static scene the memory renders under the hand's region is shown to the refiner, which then
    # draws the hand over it instead of over a smooth fill (the region stays the refiner's to write)
    show_under_hand: bool = False
    # true: a second refiner of the same shape (the hand refiner) writes the hand's dynamic region (the hand and
    # what it holds), fading into the first's output around it; the first writes the rest of the view, so a
    # frame without a hand is formed exactly as without it
    hand_refiner: bool = False
    hand_feather: int = 2  # the seam: the hand refiner's output fades out over 2 x this many pixels
    # What of a session's first frame the scene memory leaves out as the hand: its whole 'region', or its
    # 'silhouette' (hands.hand_silhouette) grown by start_hand_margin_px, so the table and objects around the
    # start hand are seen, not imagined, once the hand moves off
    start_hand: str = 'region'
    start_hand_margin_px: int = 3
    # The smooth fill the refiner starts from: 'telea' inpaints each hole from all its borders; 'far_side' leaves
    # out the nearer side of a depth edge at the hole (refiner.near_side), so what a near object uncovers
    # is continued from the background behind it, not smeared from the object
    fill: str = 'telea'
    # > 0: where no observed point lands (and no hand is), the output's low frequencies (a Gaussian of this many
    # pixels) are those of a smooth fill from the observed points alone; the refiner's imagination keeps its
    # detail but takes its colour from what the seen world continues into, so a colour the DiT hallucinates
    # cannot grow strip by committed strip
    anchor_sigma: float = 0.0
    # > 0: the anchor's weight falls as exp(-d / this) with the distance d (pixels) from the nearest observed
    # pixel, so far from what was seen the refiner's own colour stays
    anchor_reach_px: float = 0.0
    # > 0: where that weight leaves off (far from what was seen, and in a frame with nothing observed in view), the
    # low frequencies are pulled with this weight toward the mean colour of every observed point in the scene
    # memory, so the imagination's colour cannot drift frame by committed frame where no seen pixel holds it
    anchor_prior: float = 0.0
    # > 0: what the refiner wrote keeps its detail (above the anchor's low frequencies) with weight exp(-d / this),
    # d the distance from the nearest observed pixel: beside what was seen its edges and texture stay, half a view
    # away, where nothing says where a texture lies, the imagination is smooth
    detail_reach_px: float = 0.0
    # > 0: in a frame without a hand, the smooth fill the refiner starts from fades into the mean colour of every
    # observed point in the scene memory, its weight exp(-d / this) with the distance d (pixels) from the nearest
    # observed pixel: Telea's row-wise smear is a good guess beside what was seen and a poor one half a view
    # away, where the scene's mean colour is the better one; the refiner learns what it adds over that
    fill_fade_px: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    name: str = 'ws-tiny'
    height: int = 96
    width: int = 128
    fps: float = 10.0
    vfov_deg: float = 60.0
    camera_height: float = 1.0
    chunk_frames: int = 1  # latent frames per causal chunk
    codec: CodecConfig = field(default_factory=CodecConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    repeats: RepeatsConfig = field(default_factory=RepeatsConfig)

    def __post_init__(self) -> None:
        self.validate()

    # Derived sizes: every shape in the model comes from these.
    @property
    def latent_height(self) -> int:
        return self.height // self.codec.spatial_down

    @property
    def latent_width(self) -> int:
        return self.width // self.codec.spatial_down

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) of one latent frame."""
        return self.latent_height // self.dit.patch[1], self.latent_width // self.dit.patch[2]

    @property
    def tokens_per_frame(self) -> int:
        h, w = self.grid
        return h * w

    @property
    def pose_grid(self) -> tuple[int, int]:
        p = self.conditioning.pose_pool
        h, w = self.grid
        return h // p, w // p

    @property
    def pose_tokens_per_frame(self) -> int:
        if not self.conditioning.hands or not self.conditioning.pose_tokens:
            return 0
        h, w = self.pose_grid
        return h * w

    @property
    def tokens_per_chunk(self) -> int:
        return self.chunk_frames * (self.tokens_per_frame + self.pose_tokens_per_frame)

    @property
    def frames_per_chunk(self) -> int:
        """Video frames one chunk decodes to."""
        return self.chunk_frames * self.codec.temporal_down

    @property
    def head_dim(self) -> int:
        return self.dit.dim // self.dit.heads

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f'model config {self.name!r}: {what}')

        need(self.scene.commit_margin_px >= 0,
             f'scene.commit_margin_px must be >= 0, got {self.scene.commit_margin_px}')
        need(isinstance(self.scene.crack_px, int) and self.scene.crack_px >= 0,
             f'scene.crack_px must be an int >= 0, got {self.scene.crack_px!r}')
        need(0 <= self.scene.headlight < 1, f'scene.headlight must be in [0, 1), got {self.scene.headlight}')
        need(self.refiner.fill in FILLS, f'refiner.fill must be one of {", ".join(FILLS)}, got {self.refiner.fill!r}')
        need(self.refiner.anchor_sigma >= 0, f'refiner.anchor_sigma must be >= 0, got {self.refiner.anchor_sigma}')
        need(self.refiner.anchor_reach_px >= 0,
             f'refiner.anchor_reach_px must be >= 0, got {self.refiner.anchor_reach_px}')
        need(0 <= self.refiner.anchor_prior <= 1,
             f'refiner.anchor_prior must be within [0, 1], got {self.refiner.anchor_prior}')
        need(self.refiner.fill_fade_px >= 0, f'refiner.fill_fade_px must be >= 0, got {self.refiner.fill_fade_px}')
        need(self.refiner.detail_reach_px >= 0,
             f'refiner.detail_reach_px must be >= 0, got {self.refiner.detail_reach_px}')
        need(self.refiner.detail_reach_px == 0 or self.refiner.anchor_sigma > 0,
             f'refiner.detail_reach_px ({self.refiner.detail_reach_px}) fades the detail above the anchor\'s low '
             'frequencies: it needs refiner.anchor_sigma > 0')
        need(self.refiner.imagined in IMAGINED_MODES,
             f'refiner.imagined must be one of {", ".join(IMAGINED_MODES)}, got {self.refiner.imagined!r}')
        need(self.refiner.hand_paint in HAND_PAINTS,
             f'refiner.hand_paint must be one of {", ".join(HAND_PAINTS)}, got {self.refiner.hand_paint!r}')
        need(self.refiner.hand_feather >= 0, f'refiner.hand_feather must be >= 0, got {self.refiner.hand_feather}')
        need(self.refiner.start_hand in START_HANDS,
             f'refiner.start_hand must be one of {", ".join(START_HANDS)}, got {self.refiner.start_hand!r}')
        need(self.refiner.start_hand_margin_px >= 0,
             f'refiner.start_hand_margin_px must be >= 0, got {self.refiner.start_hand_margin_px}')
        need(self.height > 0 and self.width > 0, f'image size must be positive, got {self.width}x{self.height}')
        down = self.codec.spatial_down
        need(down > 0 and down & (down - 1) == 0, f'codec.spatial_down must be a power of two, got {down}')
        _, ph, pw = self.dit.patch
        need(self.height % (down * ph * self.conditioning.pose_pool) == 0
             and self.width % (down * pw * self.conditioning.pose_pool) == 0,
             f'{self.width}x{self.height} must divide by spatial_down * patch * pose_pool')
        need(self.dit.patch[0] == 1, 'temporal patch must be 1 (chunks are whole latent frames)')
        need(self.dit.dim % self.dit.heads == 0, f'dit.dim {self.dit.dim} must divide by heads {self.dit.heads}')
        need(self.head_dim % 2 == 0 and self.head_dim >= 6, f'head_dim {self.head_dim} too small for 3D rotary')
        need(self.fps > 0, f'fps must be positive, got {self.fps}')
        need(self.heads.start_depth_channels >= 0 and (self.heads.depth or not self.heads.start_depth_channels),
             f'heads.start_depth_channels must be >= 0 and needs heads.depth, got {self.heads.start_depth_channels}')
        need(self.heads.step_image_depth_channels >= 0
             and (self.heads.depth or not self.heads.step_image_depth_channels),
             'heads.step_image_depth_channels must be >= 0 and needs heads.depth, got '
             f'{self.heads.step_image_depth_channels}')
        need(self.chunk_frames >= 1, f'chunk_frames must be >= 1, got {self.chunk_frames}')
        need(self.sampler.steps >= 1, f'sampler.steps must be >= 1, got {self.sampler.steps}')
        need(self.memory.sink_chunks >= 1, 'memory needs at least one sink chunk (the given start)')
        need(self.dit.layout in ('worldscape', 'wan'), f"dit.layout must be 'worldscape' or 'wan', got "
             f'{self.dit.layout!r}')
        need(self.conditioning.pose_tokens or self.dit.layout == 'wan',
             "conditioning.pose_tokens false needs dit.layout 'wan' (CausalDiT takes the pose video as tokens)")
        need(self.codec.kind in ('conv', 'wan'), f"codec.kind must be 'conv' or 'wan', got {self.codec.kind!r}")
        if self.codec.kind == 'wan':
            levels = len(self.codec.dim_mult) - 1
            need(2 ** levels == down, f'the wan codec downsamples by 2 ** (len(dim_mult) - 1) = {2 ** levels}, '
                 f'codec.spatial_down is {down}')
            need(levels == 3 and self.codec.temporal_down == 4,
                 f'the wan codec is the Wan2.1 VAE: 4 levels (dim_mult has {levels + 1}) and temporal_down 4 '
                 f'(got {self.codec.temporal_down})')

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        # Settings added for the Wan2.1 layout are left out at their defaults: saved runs' resume fingerprints (a
        # hash of this dict) and checkpoints' configs stay as they were.
        for section, defaults in _OPTIONAL_AT_DEFAULT.items():
            for key, default in defaults.items():
                if d[section][key] == default:
                    del d[section][key]
        # So are the scene memory and the refiner, for the same reason.
        for section, default_section in (('scene', SceneConfig()), ('refiner', RefinerConfig()),
                                         ('repeats', RepeatsConfig())):
            if getattr(self, section) == default_section:
                del d[section]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        sections = {'codec': CodecConfig, 'dit': DiTConfig, 'conditioning': ConditioningConfig,
                    'heads': HeadsConfig, 'sampler': SamplerConfig, 'memory': MemoryConfig,
                    'scene': SceneConfig, 'refiner': RefinerConfig, 'repeats': RepeatsConfig}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f'unknown model config keys: {sorted(unknown)}')
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in sections:
                sec = sections[key]
                sec_known = {f.name for f in dataclasses.fields(sec)}
                bad = set(value or {}) - sec_known
                if bad:
                    raise ConfigError(f'unknown keys in model config section {key!r}: {sorted(bad)}')
                value = dict(value or {})
                if key == 'dit' and 'patch' in value:
                    value['patch'] = tuple(value['patch'])
                if key == 'refiner' and 'dilations' in value:
                    value['dilations'] = tuple(value['dilations'])
                if key == 'codec' and 'dim_mult' in value:
                    value['dim_mult'] = tuple(value['dim_mult'])
                kwargs[key] = sec(**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def available_configs() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob('ws-*.yaml'))


def load_config(name_or_path: str) -> ModelConfig:
    """A registered name ('ws-tiny') or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        path = MODELS_DIR / f'{name_or_path}.yaml'
    if not path.is_file():
        raise ConfigError(f'unknown model config {name_or_path!r}; available: {", ".join(available_configs())}')
    return ModelConfig.from_dict(read_yaml_mapping(path, 'model config', ConfigError))
