from worldscape_ros.eval.report import build_report, render_markdown, scenario_table


def _scenario(suite: str, name: str, figures: dict[str, dict[str, float | None]]) -> dict:
    return {'suite': suite, 'scenario': name, 'script': name.split('_')[0], 'seed': 90031, 'frames': 16,
            'systems': {s: {'summary': f, 'per_frame': {}} for s, f in figures.items()},
            'reference': {'ground_truth': {'summary': {'hand_iou': 0.41, 'object_error_px': 0.4}, 'per_frame': {}}}}


def test_manipulation_figures_are_tabled_per_script_with_systems_in_the_report_order():
    scenarios = [_scenario('manip', 'carry_90031', {'repeat_first_frame': {'hand_iou': 0.0, 'object_error_px': 15.3},
                                                    'model': {'hand_iou': 0.01, 'object_error_px': 9.0}}),
                 _scenario('manip', 'reach_90031', {'repeat_first_frame': {'hand_iou': 0.0, 'object_error_px': 2.8},
                                                    'model': {'hand_iou': 0.02, 'object_error_px': None}})]
    report = build_report(scenarios, {'suite': 'manip'})
    table = scenario_table(report, ['manip/carry_90031', 'manip/reach_90031'], 'object_error_px')
    lines = table.splitlines()
    assert lines[0] == '| scenario | model | repeat_first_frame | ground_truth |'
    assert lines[2] == '| carry_90031 | 9.000 | 15.3 | 0.400 |' and lines[3] == '| reach_90031 | - | 2.800 | 0.400 |'
    assert scenario_table(report, ['manip/carry_90031'], 'revisit_psnr') == ''
    md = render_markdown(report)
    assert '## Suite manip, per scenario' in md and 'hand mask IoU:' in md and 'object position error px:' in md
