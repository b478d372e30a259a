"""The simulator's services: ~/reset and ~/reset_from_image (back to the start, or to a given view), ~/pause,
~/resume and ~/step (frames on request while paused). ~/step waits in its own callback group, so the other
services and the lifecycle transitions are answered while steps run. Services: docs/ros_interface.md."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from std_srvs.srv import Trigger
from worldscape_msgs.srv import ResetFromImage, StepFrames

from worldscape_ros.data.camera_adapt import start_warnings
from worldscape_ros.model.protocol import LiveEngine
from worldscape_ros.ros.generation import GenerationLoop, StepRefused
from worldscape_ros.ros.inbox import CommandInbox
from worldscape_ros.ros.inputs import InputCounts
from worldscape_ros.ros.params import SimulatorParams
from worldscape_ros.ros.sim_clock import SimClock
from worldscape_ros.ros.start import start_from_request


class SimulatorServices:
    """The services of one configuration of the node. They outlive an error (ErrorProcessing frees the engine):
    requests then hear that the node is not configured.

    engine: the node's engine, None when not configured; engine_lock: held for every engine call; reset_engine:
    back to the configured start; restart_if_stopped: start the inference thread again when the node is active
    but the thread is gone (True when it did).
    """

    def __init__(self, node: Node, p: SimulatorParams, loop: GenerationLoop, clock: SimClock, *,
                 engine: Callable[[], LiveEngine | None], engine_lock: threading.Lock, inbox: CommandInbox,
                 reset_engine: Callable[[], None], restart_if_stopped: Callable[[], bool],
                 counts: InputCounts) -> None:
        self._node = node
        self._logger = node.get_logger()
        self._params = p
        self._loop = loop
        self._clock = clock
        self._engine = engine
        self._engine_lock = engine_lock
        self._inbox = inbox
        self._reset_engine = reset_engine
        self._restart_if_stopped = restart_if_stopped
        self._counts = counts
        self._step_group = ReentrantCallbackGroup()  # ~/step awaits here without holding the other services
        self._services = [
            node.create_service(Trigger, '~/reset', self.on_reset),
            node.create_service(ResetFromImage, '~/reset_from_image', self.on_reset_from_image),
            node.create_service(Trigger, '~/pause', self.on_pause),
            node.create_service(Trigger, '~/resume', self.on_resume),
            node.create_service(StepFrames, '~/step', self.on_step, callback_group=self._step_group),
        ]

    def destroy(self) -> None:
        for srv in self._services:
            self._node.destroy_service(srv)
        self._services = []

    def _after_reset(self, service: str) -> str:
        """A reset cancels the ~/step requests in flight and restarts generation if it had stopped; says so."""
        self._loop.finish_steps(cancel=f'cancelled by {service}')
        return '; generation restarted' if self._restart_if_stopped() else ''

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Back to the start."""
        if self._engine() is None:
            response.success, response.message = False, 'not configured'
            return response
        try:
            with self._engine_lock:
                self._inbox.clear()
                self._reset_engine()
        except (ValueError, RuntimeError) as exc:
            response.success, response.message = False, f'reset failed: {exc}'
            self._logger.error(response.message)
            return response
        restarted = self._after_reset('~/reset')
        response.success = True
        response.message = f'reset to the start at sim time {self._clock.now_ns / 1e9:.3f} s{restarted}'
        self._logger.info(response.message)
        return response

    def on_reset_from_image(self, request: ResetFromImage.Request,
                            response: ResetFromImage.Response) -> ResetFromImage.Response:
        """Start again from the request's image (and depth, camera and pose), fitted to the model's camera."""
        engine = self._engine()
        if engine is None:
            response.success, response.message = False, 'not configured'
            return response
        cfg = engine.config
        try:
            start, c2w = start_from_request(request, cfg, self._params.max_position)
            with self._engine_lock:
                frame = engine.reset(start.rgb, c2w, start.K, start.depth)
                self._inbox.clear()
            notes = start.notes + start_warnings(start.fit, start.K, cfg.vfov_deg, frame.depth)
            for note in notes:
                self._logger.warning(f'reset_from_image: {note}')
        except ValueError as exc:
            self._counts.rejected += 1
            response.success, response.message = False, f'reset_from_image rejected: {exc}'
            self._logger.warning(response.message)
            return response
        restarted = self._after_reset('~/reset_from_image')
        response.success = True
        response.message = 'reset from the given image' + restarted + ''.join(f'; {note}' for note in notes)
        return response

    def on_pause(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Stop generating; ~/step requests in flight end with the frames made so far."""
        idle = self._loop.pause()  # answered once the frame in flight is out: no frame follows the answer
        self._loop.finish_steps(cancel='cancelled by ~/pause')
        response.success = True
        response.message = (f'paused at frame {self._clock.frames}'
                            + ('' if idle else ' (a frame is still in flight)'))
        return response

    def on_resume(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._loop.resume()
        response.success, response.message = True, f'resumed at frame {self._clock.frames}'
        return response

    async def on_step(self, request: StepFrames.Request, response: StepFrames.Response) -> StepFrames.Response:
        """Generate `frames` frames while paused. Awaits them in its own callback group, so pause, resume, reset,
        the lifecycle services and other steps are answered meanwhile; ~/pause, ~/reset, deactivation or
        step_timeout end it early with the frames made so far."""
        n = int(request.frames)
        executor = self._node.executor
        future = executor.create_future() if executor is not None else None
        if future is not None:
            future.add_done_callback(lambda _f: None)  # its scheduling wakes the executor
        try:
            waiter = self._loop.request(n, self._params.max_step_frames, future)
        except StepRefused as exc:
            response.success, response.message = False, str(exc)
            return response
        timeout = self._params.step_timeout
        if future is not None:
            timer = self._node.create_timer(timeout, lambda: self._loop.finish_steps(
                cancel=f'timed out after step_timeout={timeout:g} s'), callback_group=self._step_group)
            try:
                await future
            finally:
                self._node.destroy_timer(timer)
        elif not waiter.done.wait(timeout):
            self._loop.finish_steps(cancel=f'timed out after step_timeout={timeout:g} s')
        response.frames_generated = waiter.generated
        response.success = response.frames_generated == n and not waiter.cancelled
        response.message = f'generated {response.frames_generated} of {n} frames'
        if waiter.cancelled:
            response.message += f' ({waiter.cancelled})'
        return response
