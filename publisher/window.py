"""The operator window: what the publisher is doing, read from its status, limiter and writer.

Read-only apart from closing, which stops the publisher (flushing pending writes). No modal dialogs:
they would block an unattended publisher and offscreen tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QCloseEvent, QColor, QFont, QFontDatabase, QIcon, QPixmap
from PyQt5.QtWidgets import (
    QAction,
    QApplication,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMainWindow,
    QMenu,
    QProgressBar,
    QSystemTrayIcon,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kiwoom_cache.clock import kst_datetime, now_ms
from publisher.app import Publisher

log = logging.getLogger(__name__)

#: Malgun Gothic ships with Korean Windows; the others are what Linux (fontconfig) usually has.
FONT_FAMILIES = ["Malgun Gothic", "맑은 고딕", "Noto Sans CJK KR", "NanumGothic", "Noto Sans KR", "sans-serif"]
ACCOUNT_MODES = {"real": "실서버 real", "mock": "모의투자 mock", "sim": "시뮬레이션 sim"}
STATE_COLORS = {"running": "#1a7f37", "degraded": "#c62828", "connecting": "#b26a00", "paused": "#b26a00",
                "standby": "#1565c0"}
ROLE_TEXT = {"leader": "리더 leader (polls and writes)", "standby": "대기 standby (no TR sent)"}
COLUMNS = ("feed", "title", "published (KST)", "age", "rows", "last id", "req / refused / err", "dropped",
           "last error")


def kst_hms(epoch_ms: int | None) -> str:
    return kst_datetime(epoch_ms).strftime("%H:%M:%S") if epoch_ms else "—"


def age_text(epoch_ms: int | None, now: int) -> str:
    if not epoch_ms:
        return "—"
    seconds = max(0, (now - epoch_ms) // 1000)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def ui_font(point_size: int = 10) -> QFont:
    # Installed families only: a missing first family gets substituted by fontconfig, and Qt then measures
    # text with one font and draws it with another, clipping labels.
    installed = set(QFontDatabase().families())
    font = QFont()
    font.setFamilies([f for f in FONT_FAMILIES if f in installed] or FONT_FAMILIES)
    font.setPointSize(point_size)
    return font


def section(title: str) -> tuple[QGroupBox, QVBoxLayout]:
    """A frame titled by a bold label: QGroupBox's own title clipped Hangul drawn in a fallback font."""
    box = QGroupBox()
    layout = QVBoxLayout(box)
    heading = QLabel(f"<b>{title}</b>")
    layout.addWidget(heading)
    return box, layout


class OperatorWindow(QMainWindow):
    #: Emitted once, after closing stopped the publisher.
    closed = pyqtSignal()

    def __init__(self, publisher: Publisher, *, quit_on_close: bool = True, refresh_ms: int = 1000,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.publisher = publisher
        self.quit_on_close = quit_on_close
        self._stopped = False
        self._errors_seen: tuple[int, tuple[int, str] | None] = (0, None)
        self.setWindowTitle("kiwoom-cache publisher")
        self.setFont(ui_font())
        self.resize(1100, 640)

        self.state_label = QLabel()
        self.state_label.setFont(ui_font(12))
        self.session_label = QLabel()
        #: Leader or standby (docs/high-availability.md), with this publisher's lease id.
        self.role_label = QLabel()
        self.role_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        head = QHBoxLayout()
        head.addWidget(self.state_label)
        head.addSpacing(24)
        head.addWidget(self.session_label)
        head.addSpacing(24)
        head.addWidget(self.role_label)
        head.addStretch(1)

        self.table = QTableWidget(len(publisher.settings.feeds), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        rows, columns = self.table.verticalHeader(), self.table.horizontalHeader()
        assert rows is not None and columns is not None, "a QTableView always has both headers"
        rows.setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        columns.setSectionResizeMode(QHeaderView.ResizeToContents)
        columns.setStretchLastSection(True)

        budget_box, budget_layout = section("요청 한도 request budget (used / limit)")
        grid = QGridLayout()
        budget_layout.addLayout(grid)
        self.budget_bars: dict[str, QProgressBar] = {}
        for row, window in enumerate(publisher.poller.limiter.windows):
            key = f"{window.seconds:g}s"  # the limiter's own budget() keys
            bar = QProgressBar()
            bar.setRange(0, window.limit)
            bar.setFormat("%v / %m")
            grid.addWidget(QLabel(key), row, 0)
            grid.addWidget(bar, row, 1)
            self.budget_bars[key] = bar

        writer_box, writer_layout = section("Redis writer")
        self.writer_label = QLabel()
        self.writer_label.setWordWrap(True)
        self.writer_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        writer_layout.addWidget(self.writer_label)

        errors_box, errors_layout = section("최근 오류 recent errors (newest first)")
        self.error_list = QListWidget()
        errors_layout.addWidget(self.error_list)

        middle = QHBoxLayout()
        middle.addWidget(budget_box, 1)
        middle.addWidget(writer_box, 1)
        root = QVBoxLayout()
        root.addLayout(head)
        root.addWidget(self.message_label)
        root.addWidget(self.table, 2)
        root.addLayout(middle)
        root.addWidget(errors_box, 2)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)

        self.tray = self._make_tray() if QSystemTrayIcon.isSystemTrayAvailable() else None

        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(refresh_ms)
        # Writes can arrive many times a second; coalesce signal-driven refreshes into one per 100 ms.
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(100)
        self._soon.timeout.connect(self.refresh)
        publisher.written.connect(self._schedule)
        publisher.stateChanged.connect(self._schedule)
        publisher.roleChanged.connect(self._schedule)
        publisher.errorOccurred.connect(self._schedule)
        self.refresh()

    def _make_tray(self) -> QSystemTrayIcon:
        pixmap = QPixmap(16, 16)
        pixmap.fill(QColor("#1565c0"))
        tray = QSystemTrayIcon(QIcon(pixmap), self)
        menu = QMenu(self)
        show = QAction("Show window", menu)
        show.triggered.connect(self._show_from_tray)
        quit_ = QAction("Quit", menu)
        quit_.triggered.connect(self._close_from_tray)
        menu.addActions([show, quit_])
        tray.setContextMenu(menu)
        tray.activated.connect(lambda _reason: self._show_from_tray())
        tray.show()
        return tray

    def _show_from_tray(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _close_from_tray(self) -> None:
        self.close()  # a slot returns None; close() reports whether the window closed

    def _schedule(self, *_: object) -> None:
        if not self._soon.isActive():
            self._soon.start()

    # --- rendering ------------------------------------------------------------------------------------

    def refresh(self) -> None:
        status = self.publisher.status()
        mode = ACCOUNT_MODES.get(status.account_mode or "", status.account_mode or "not logged in")
        color = STATE_COLORS.get(status.state, "#455a64")
        self.state_label.setText(f'<b style="color:{color}">{status.state}</b> · {mode} · source {status.source}')
        self.session_label.setText(f"KRX session: {status.session}" if status.session else "")
        self.session_label.setVisible(bool(status.session))
        role = self.publisher.role.value
        self.role_label.setText(f"<b>{ROLE_TEXT[role]}</b> · id {self.publisher.id}"
                                + (" · preferred leader" if status.preferred else ""))
        self.message_label.setText(status.message or "")
        self.message_label.setVisible(bool(status.message))
        self._render_feeds(status.feeds)
        self._render_budget()
        self._render_writer()
        self._render_errors()
        if self.tray is not None:
            stats = self.publisher.writer.stats()
            self.tray.setToolTip(f"kiwoom-cache: {status.state}, {role} ({mode})\nRedis {stats.state.value}, "
                                 f"{stats.written} written, {stats.pending} pending")

    def _render_feeds(self, feeds: Mapping[str, Mapping[str, Any]]) -> None:
        now = now_ms()
        for row, settings in enumerate(self.publisher.settings.feeds):
            s = feeds.get(settings.feed, {})
            published = s.get("last_published_ms")
            cells = (
                settings.feed, settings.title, kst_hms(published), age_text(published, now),
                str(s.get("last_rows", "—")), s.get("last_id") or "—",
                f"{s.get('requests', 0)} / {s.get('refusals', 0)} / {s.get('errors', 0)}",
                str(s.get("dropped_rows", 0)), s.get("last_error") or "",
            )
            for col, text in enumerate(cells):
                item = self.table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(row, col, item)
                if item.text() != text:
                    item.setText(text)
                    item.setToolTip(text)

    def _render_budget(self) -> None:
        for key, used in self.publisher.poller.budget().items():
            bar = self.budget_bars.get(key)
            if bar is not None:
                bar.setValue(min(used, bar.maximum()))

    def _render_writer(self) -> None:
        st = self.publisher.writer.stats()
        color = "#1a7f37" if st.state.value == "connected" else "#c62828"
        text = (f'<b style="color:{color}">{st.state.value}</b> · {self.publisher.settings.masked_url()}<br>'
                f"written {st.written} · superseded {st.superseded} · pending {st.pending} · "
                f"rejected {st.rejected} · fenced {st.fenced} · reconnects {st.reconnects}")
        if st.last_error:
            text += f"<br>last error: {st.last_error}"
        self.writer_label.setText(text)

    def _render_errors(self) -> None:
        errors = list(self.publisher.recent_errors)
        seen = (len(errors), errors[-1] if errors else None)
        if seen == self._errors_seen:  # the deque is bounded, so length alone can stop changing
            return
        self._errors_seen = seen
        self.error_list.clear()
        self.error_list.addItems([f"{kst_hms(ms)}  {text}" for ms, text in reversed(errors)])

    # --- closing --------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if not self._stopped:
            self._stopped = True
            self._timer.stop()
            self._soon.stop()
            self.publisher.stop()
            st = self.publisher.writer.stats()
            outcome = f"stopped: {st.written} written, {st.superseded} superseded, {st.pending} unsent"
            if st.pending:
                log.warning("publisher %s", outcome)
            status_bar = self.statusBar()
            assert status_bar is not None, "QMainWindow.statusBar() creates the bar on first use"
            status_bar.showMessage(outcome)
            self.refresh()
            if self.tray is not None:
                self.tray.hide()
            self.closed.emit()
            if self.quit_on_close:
                QApplication.quit()
        if event is not None:
            event.accept()
