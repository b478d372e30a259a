import pytest

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.config import ModelConfig, available_configs, load_config


def test_registry_has_the_three_sizes():
    assert {'ws-tiny', 'ws-small', 'ws-1.3b'} <= set(available_configs())


def test_ws_1_3b_has_the_wan_transformer_shape():
    cfg = load_config('ws-1.3b')
    assert (cfg.dit.dim, cfg.dit.depth, cfg.dit.heads, cfg.dit.ffn, cfg.dit.patch) == (1536, 30, 12, 8960, (1, 2, 2))
    assert cfg.codec.latent_channels == 16 and cfg.codec.spatial_down == 8
    assert cfg.tokens_per_frame == 1560  # 832x480 as in Self-Forcing


def test_tiny_is_at_least_128x96():
    cfg = load_config('ws-tiny')
    assert cfg.width >= 128 and cfg.height >= 96


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(ConfigError, match='ws-tiny'):
        load_config('ws-huge')


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / 'bad.yaml'
    p.write_text('name: bad\ndit: {dim: 64, wings: 2}\n')
    with pytest.raises(ConfigError, match='wings'):
        load_config(str(p))


def test_sizes_that_do_not_divide_into_patches_are_refused():
    with pytest.raises(ConfigError, match='divide'):
        ModelConfig(height=100, width=128)


def test_config_round_trips_through_a_dict():
    cfg = load_config('ws-small')
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_memory_may_have_no_window_but_needs_a_sink():
    cfg = load_config('ws-tiny')
    assert cfg.replace(memory=cfg.memory.__class__(window_chunks=0)).memory.window_chunks == 0
    with pytest.raises(ConfigError, match='memory.window_chunks must be a non-negative int, got -1'):
        cfg.replace(memory=cfg.memory.__class__(window_chunks=-1))
    with pytest.raises(ConfigError, match='at least one sink'):
        cfg.replace(memory=cfg.memory.__class__(sink_chunks=0))


def test_the_memory_section_is_the_memory_config_and_its_new_fields_stay_out_of_saved_configs():
    from worldscape_ros.model.memory import HierarchicalMemory

    cfg = load_config('ws-tiny')
    assert HierarchicalMemory(cfg.memory).config is cfg.memory  # one type: the memory runs the section as loaded
    assert set(cfg.to_dict()['memory']) == {'sink_chunks', 'window_chunks', 'pool_chunks', 'retrieve_chunks',
                                            'geometry_views', 'attend_pool'}  # fingerprints and checkpoints as before
    gated = cfg.replace(memory=cfg.memory.__class__(gate_distance_m=0.5, pool_bytes=2**20))
    assert ModelConfig.from_dict(gated.to_dict()) == gated
    with pytest.raises(ConfigError, match='memory.gate_content must be a cosine'):
        ModelConfig.from_dict({**cfg.to_dict(), 'memory': {'gate_content': 2.0}})


def test_the_refiners_hand_settings_are_checked_and_saved_only_when_set():
    cfg = load_config('ws-tiny')
    later = {'hand_paint', 'show_under_hand', 'hand_refiner', 'hand_feather', 'start_hand', 'start_hand_margin_px'}
    assert later.isdisjoint(
        ModelConfig.from_dict({**cfg.to_dict(), 'refiner': {'enabled': True}}).to_dict()['refiner'])
    drawn = cfg.replace(refiner=cfg.refiner.__class__(enabled=True, hand_paint='silhouette', show_under_hand=True,
                                                      hand_refiner=True, start_hand='silhouette'))
    assert ModelConfig.from_dict(drawn.to_dict()) == drawn
    with pytest.raises(ConfigError, match="refiner.hand_paint must be one of region, silhouette, got 'mesh'"):
        cfg.replace(refiner=cfg.refiner.__class__(hand_paint='mesh'))
    with pytest.raises(ConfigError, match="refiner.start_hand must be one of region, silhouette, got 'hull'"):
        cfg.replace(refiner=cfg.refiner.__class__(start_hand='hull'))
    with pytest.raises(ConfigError, match='refiner.hand_feather must be >= 0, got -1'):
        cfg.replace(refiner=cfg.refiner.__class__(hand_feather=-1))


def test_the_crack_rule_and_the_far_side_fill_are_checked_and_saved_only_when_set():
    cfg = load_config('ws-tiny')
    plain = ModelConfig.from_dict({**cfg.to_dict(), 'scene': {}, 'refiner': {'enabled': True}}).to_dict()
    assert 'crack_px' not in plain.get('scene', {}) and 'fill' not in plain['refiner']
    set_ = cfg.replace(scene=cfg.scene.__class__(crack_px=3), refiner=cfg.refiner.__class__(fill='far_side'))
    assert ModelConfig.from_dict(set_.to_dict()) == set_
    with pytest.raises(ConfigError, match='scene.crack_px must be an int >= 0, got -1'):
        cfg.replace(scene=cfg.scene.__class__(crack_px=-1))
    with pytest.raises(ConfigError, match="refiner.fill must be one of telea, far_side, got 'navier'"):
        cfg.replace(refiner=cfg.refiner.__class__(fill='navier'))


def test_the_anchor_is_checked_and_saved_only_when_set():
    cfg = load_config('ws-tiny')
    plain = cfg.replace(refiner=cfg.refiner.__class__(enabled=True)).to_dict()['refiner']
    assert 'anchor_sigma' not in plain and 'anchor_reach_px' not in plain and 'detail_reach_px' not in plain
    set_ = cfg.replace(refiner=cfg.refiner.__class__(anchor_sigma=8.0, anchor_reach_px=16.0, detail_reach_px=4.0))
    assert ModelConfig.from_dict(set_.to_dict()) == set_
    with pytest.raises(ConfigError, match='refiner.anchor_sigma must be >= 0, got -1'):
        cfg.replace(refiner=cfg.refiner.__class__(anchor_sigma=-1.0))
    with pytest.raises(ConfigError, match='refiner.anchor_reach_px must be >= 0, got -2'):
        cfg.replace(refiner=cfg.refiner.__class__(anchor_reach_px=-2.0))
    with pytest.raises(ConfigError, match='refiner.detail_reach_px must be >= 0, got -4'):
        cfg.replace(refiner=cfg.refiner.__class__(detail_reach_px=-4.0))
    with pytest.raises(ConfigError, match=r'refiner.detail_reach_px \(4.0\) .* needs refiner.anchor_sigma > 0'):
        cfg.replace(refiner=cfg.refiner.__class__(detail_reach_px=4.0))
