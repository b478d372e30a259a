"""The command inbox (latest input wins, commands time out in sim time) and the warning throttle."""

import time

import numpy as np

from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.ros.inbox import CommandInbox, Throttle

S = 1_000_000_000  # ns


def test_a_twist_holds_until_its_timeout_in_sim_time():
    inbox = CommandInbox(cmd_timeout_ns=S // 2, hands_timeout_ns=S)
    inbox.set_twist(NavAction(vx=1.0), now_ns=0)
    assert inbox.take(S // 2 - 1)[0] == NavAction(vx=1.0)
    assert inbox.take(S // 2 - 1)[0] == NavAction(vx=1.0)  # taken every frame while fresh
    assert inbox.take(S // 2)[0] == NavAction()  # timed out: stand still


def test_a_pose_target_is_used_once_and_replaces_the_twist():
    inbox = CommandInbox(S, S)
    inbox.set_twist(NavAction(vx=1.0), 0)
    pose = np.eye(4)
    pose[0, 3] = 2.0
    inbox.set_pose(pose, 0)
    motion, _ = inbox.take(0)
    assert isinstance(motion, np.ndarray) and motion[0, 3] == 2.0
    assert inbox.take(0)[0] == NavAction()  # the twist it replaced does not come back


def test_a_twist_after_a_pose_target_wins():
    inbox = CommandInbox(S, S)
    inbox.set_pose(np.eye(4), 0)
    inbox.set_twist(NavAction(yaw_rate=0.5), 0)
    assert inbox.take(0)[0] == NavAction(yaw_rate=0.5)


def test_a_different_motion_command_after_a_take_supersedes_it_and_a_repeat_does_not():
    inbox = CommandInbox(cmd_timeout_ns=S, hands_timeout_ns=S)
    inbox.set_twist(NavAction(vx=0.5), 0)
    inbox.take(0)
    assert not inbox.superseded()
    inbox.set_twist(NavAction(vx=0.5), S // 10)  # a teleop repeating its command at 10 Hz
    inbox.set_hands(np.zeros((21, 3)), S // 10)  # hands stream: never a new motion
    assert not inbox.superseded()
    inbox.set_twist(NavAction(vx=0.2), S // 5)
    assert inbox.superseded()
    inbox.take(S // 5)
    assert not inbox.superseded()
    inbox.set_pose(np.eye(4), S // 4)  # a pose target is always new
    assert inbox.superseded()
    inbox.take(S // 4)
    inbox.set_twist(NavAction(vx=0.2), S // 4)  # the twist the pose replaced comes back: a change
    assert inbox.superseded()


def test_the_same_twist_after_the_last_one_timed_out_supersedes_the_stand_still():
    inbox = CommandInbox(cmd_timeout_ns=S // 2, hands_timeout_ns=S)
    inbox.set_twist(NavAction(vx=0.5), 0)
    assert inbox.take(S)[0] == NavAction()  # timed out
    inbox.set_twist(NavAction(vx=0.5), S)
    assert inbox.superseded() and inbox.take(S)[0] == NavAction(vx=0.5)


def test_hand_keypoints_go_stale_after_their_timeout_and_clear_drops_everything():
    inbox = CommandInbox(S, hands_timeout_ns=S // 10)
    hands = np.zeros((21, 3))
    inbox.set_hands(hands, 0)
    assert inbox.take(S // 10 - 1)[1] is hands
    assert inbox.take(S // 10)[1] is None
    inbox.set_twist(NavAction(vx=1.0), 0)
    inbox.set_hands(hands, 0)
    inbox.clear()
    assert inbox.take(0) == (NavAction(), None)


def test_throttle_lets_one_message_per_key_and_period_through():
    throttle = Throttle(period=60.0)
    assert throttle('a') and throttle('b')
    assert not throttle('a') and not throttle('b')
    throttle.forget('a')
    assert throttle('a') and not throttle('b')
    throttle.forget()
    assert throttle('b')


def test_throttle_opens_again_after_its_period():
    throttle = Throttle(period=0.02)
    assert throttle('k')
    time.sleep(0.03)
    assert throttle('k')
