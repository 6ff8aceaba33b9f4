# What the kiosk shows and says, as pure functions of what happened: screens
# are built here alone, and the wording of every outcome message is in
# wording.txt beside this file. Large Chinese text; names and numbers arrive
# here masked already (the clear ones never leave the lookup).
#
# A screen is (page, title, lines, footer, voice). A footer with a %d counts
# down: the app fills in the seconds the page has left, once a second
# (drivers/display.py). Display VP addresses
# (hardware/boards/*kiosk*.json document the DGUS project): title,
# line1..line8, footer. Names here stay few: every distinct name costs the
# 64K kiosk heap (apps/dock/README.md, Heap budget).
from micropython import const

_TITLE = const(0x1000)
# Six rows of large type, each with a right-aligned column (amounts, a station's
# bikes): row 0 says who (or what the kiosk is for), rows 1-4 the records, row 5
# the total. The footer says what to do next.
LINES = (0x1100, 0x1200, 0x1300, 0x1400, 0x1500, 0x1600)
AMOUNTS = (0x2100, 0x2200, 0x2300, 0x2400, 0x2500, 0x2600)
_FOOTER = const(0x1900)
VP = (_TITLE, LINES, AMOUNTS, _FOOTER)  # what drivers/display.py Display takes
_ROWS = const(4)  # records shown: the latest; the total counts them all
TAKE_CARD = "请取回身份证，本页%d秒后返回"  # %d: the seconds left, counted down

_PAGE_IDLE = const(0)
_PAGE_RESULT = const(1)
_PAGE_MESSAGE = const(2)

def yuan(n):
    """n fen as yuan, e.g. 12345 -> "123.45元"."""
    return "%d.%02d元" % (n // 100, n % 100)


def idle(stations):
    """Idle screen: what the kiosk is for, and the nearest stations' bikes, e.g.
    [("昌硕广场", 5, 7)]; until the edge has sent them, that they are coming."""
    lines = [("刷身份证，查询惠民补贴发放记录", "")]
    for n, b, d in stations[:_ROWS]:
        lines.append((n, "可借%d  可还%d" % (b, d)))
    if not stations:
        lines.append(("附近站点车辆信息更新中", ""))
    return _PAGE_IDLE, "惠民资金查询", lines, "请将身份证放在读卡区", None


def message(reason, help=""):
    """The screen for an outcome; its wording comes from wording.txt (read from
    flash each time: the texts cost no heap), "unreadable"'s if it has none. An
    outcome that ends the visit says where to ask (help, from the configuration)
    and to take the card back."""
    with open(__file__.rpartition("/")[0] + "/wording.txt", "rb") as f:
        for raw in f:
            if raw.startswith(reason.encode() + b"|"):
                parts = str(raw, "utf-8").rstrip().split("|")
                text, voice = parts[1], parts[2]
                next_step = parts[3] if len(parts) > 3 else ""
                lines = [("", ""), (help, "")] if next_step == "help" and help else []
                return (_PAGE_MESSAGE, text, lines, TAKE_CARD if next_step else "",
                        voice)
    if reason != "unreadable":
        return message("unreadable", help)
    return _PAGE_MESSAGE, "?", [], "", ""


def result(name, id, records, stale):
    """The payments, latest first: programme and date, the amount in its own
    column; the total of all of them and how many; then take the card, and how
    long the page stays, counted down. name and id arrive masked; stale is the
    cache's date, or None."""
    lines = [("%s  身份证 %s" % (name, id), "")]
    total = 0
    for r in records:  # rows: programme, fen, paid, status
        total += r[1]
        if len(lines) <= _ROWS:
            left = "%s  %s" % (r[0], r[2])
            if r[3] != "已发放":
                left += "  " + r[3]
            lines.append((left, yuan(r[1])))
    while len(lines) <= _ROWS:
        lines.append(("", ""))
    shown = min(len(records), _ROWS)
    lines.append(("共%d笔 合计" % len(records) if len(records) == shown
                  else "共%d笔(显示最近%d笔) 合计" % (len(records), shown), yuan(total)))
    footer = TAKE_CARD
    if stale:
        footer = "服务暂不可用，显示%s的记录。请取回身份证" % stale
    voice = "您共领取补贴%s" % yuan(total)
    if records:
        r = records[0]
        voice += "，最近一笔是%s，%s，%s发放" % (r[0], yuan(r[1]), r[2])
    return _PAGE_RESULT, "惠民资金查询结果", lines, footer, voice
