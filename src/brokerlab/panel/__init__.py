"""The control panel: start, scale, slow down and kill producers and consumers live.

    panel = ControlPanel(run, "rabbitmq", name="orders")   # shows itself as the cell's output
    panel.add_consumer(); panel.start_all(); panel.kill(1); panel.set_rate(50)

A panel is a view over `brokerlab.workers` workers on one target (a RabbitMQ queue, a
Redis stream, list or pub/sub channel, a Kafka topic):

- `model.py`: the workers it runs and every action on them; each button calls one of
  its public methods (`add_producer`, `add_consumer`, `remove`, `start`, `stop`, `kill`,
  `start_all`, `stop_all`, `set_rate`, `set_size`, `choose`, `close`), so a notebook run
  unattended (and CI) does exactly what a click does;
- `probes.py`: what it reads from the broker, through the broker views
  (`brokerlab.rabbitmq`, `brokerlab.kafka`, Redis commands);
- `view.py`: the ipywidgets, redrawn by one thread that only sets widget values.

Re-running the cell that makes a panel closes the previous panel of the same lesson,
broker and name: its workers stop, its connections close, its widgets go.
`bl.cleanup(run)` stops every panel worker of the run (their names start with the run's
prefix). Taught in 00.03; used in the work-queue, pub/sub and group lessons.
"""

from brokerlab.panel.view import ControlPanel, close_panels, rate_chart_svg

__all__ = ["ControlPanel", "close_panels", "rate_chart_svg"]
