"""The always-visible GPU strip: one line per GPU and one for the host. Data comes down as attributes;
it never reads NVML itself."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from minimind_tui.gpu.monitor import GpuInfo, GpuReading
from minimind_tui.gpu.system import SystemReading

NA = "N/A"


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return NA if value is None else f"{value:{fmt}}{unit}"


def gpu_line(g: GpuInfo, width: int = 80, show_trainer: bool = True) -> Text:
    line = Text()
    line.append(f"GPU{g.index} ", style="bold")
    if g.error:
        line.append(f"{NA}: {g.error}", style="bold red")
        return line
    name = (g.name or NA).replace("NVIDIA ", "")
    line.append(name[:max(8, width - 66)] + " ", style="cyan")
    mem = (f"{g.mem_used_gb:.1f}/{g.mem_total_gb:.1f} GB" if g.mem_used_gb is not None
           and g.mem_total_gb is not None else NA)
    line.append(f"mem {mem}  ")
    util_style = "green" if (g.util_pct or 0) >= 50 else "yellow"
    line.append(f"util {_num(g.util_pct, '.0f', '%')}", style=util_style if g.util_pct is not None else "dim")
    line.append(f"  {_num(g.temp_c, '.0f', '°C')}  ")
    if g.power_w is None:
        line.append(f"{NA} W")
    else:
        limit = f"/{g.power_limit_w:.0f}" if g.power_limit_w is not None else ""
        line.append(f"{g.power_w:.0f}{limit} W")
    if show_trainer:
        line.append(f"  trainer {_num(g.trainer_mem_gb, '.1f', ' GB')}", style="magenta")
    return line


def _size(gb: float | None) -> str:
    if gb is None:
        return NA
    return f"{gb * 1024:.0f} MB" if gb < 1 else f"{gb:.1f} GB"


def host_line(s: SystemReading | None) -> Text:
    line = Text()
    if s is None:
        return Text("host: reading…", style="dim")
    line.append("host ", style="bold")
    line.append(f"CPU {s.cpu_pct:.0f}% of {s.cpu_count}  RAM {s.ram_used_gb:.1f}/{s.ram_total_gb:.1f} GB")
    if s.trainer_cpu_pct is not None:
        line.append(f"  trainer CPU {s.trainer_cpu_pct:.0f}% RSS {_size(s.trainer_rss_gb)}", style="magenta")
    return line


class GpuPanel(Static):
    gpu: reactive[GpuReading | None] = reactive(None)
    system: reactive[SystemReading | None] = reactive(None)

    def render(self) -> Text:
        out = Text()
        width = self.size.width or 80
        if self.gpu is None:
            out.append("GPU: reading…", style="dim")
        elif self.gpu.unavailable:
            out.append(self.gpu.unavailable, style="yellow")
        else:
            for i, g in enumerate(self.gpu.gpus):
                if i:
                    out.append("\n")
                out.append_text(gpu_line(g, width, self.gpu.watching_trainer))
        out.append("\n")
        out.append_text(host_line(self.system))
        out.no_wrap = True
        out.overflow = "ellipsis"
        return out
