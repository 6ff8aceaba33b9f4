# What the kiosk shows and says, as pure functions of what happened: screens
# are built here alone, and the wording of every outcome message is in
# wording.txt beside this file. Large Chinese text; names and numbers arrive
# here masked already (the clear ones never leave the lookup).
#
# A screen is (page, title, lines, footer, voice). Display VP addresses
# (hardware/boards/*kiosk*.json document the DGUS project): title,
# line1..line8, footer. Names here stay few: every distinct name costs the
# 64K kiosk heap (apps/dock/README.md, Heap budget).
from micropython import const

_TITLE = const(0x1000)
LINES = (0x1100, 0x1200, 0x1300, 0x1400, 0x1500, 0x1600, 0x1700, 0x1800)
_FOOTER = const(0x1900)
VP = (_TITLE, LINES, _FOOTER)  # what drivers/display.py Display takes

_PAGE_IDLE = const(0)
_PAGE_RESULT = const(1)
_PAGE_MESSAGE = const(2)

def yuan(n):
    """n fen as yuan, e.g. 12345 -> "123.45元"."""
    return "%d.%02d元" % (n // 100, n % 100)


def idle(stations):
    """Idle screen: nearby bike availability lines, e.g. [("昌硕广场", 5, 7)]."""
    lines = ["%s  可借%d  可还%d" % (n, b, d) for n, b, d in stations[:len(LINES)]]
    return _PAGE_IDLE, "请将身份证放在读卡区", lines, "", None


def message(reason):
    """The screen for an outcome; its wording comes from wording.txt (read from
    flash each time: the texts cost no heap), "unreadable"'s if it has none."""
    with open(__file__.rpartition("/")[0] + "/wording.txt", "rb") as f:
        for raw in f:
            if raw.startswith(reason.encode() + b"|"):
                text, voice = str(raw, "utf-8").rstrip().split("|")[1:3]
                return _PAGE_MESSAGE, text, [], "", voice
    return message("unreadable") if reason != "unreadable" else (_PAGE_MESSAGE, "?", [], "", "")


def result(name, id, records, stale):
    """The payments: programme, amount, date, status; total and latest spoken.
    name and id arrive masked; stale is the cache's date, or None."""
    lines = ["%s  身份证 %s" % (name, id)]
    total = 0
    for r in records[:len(LINES) - 1]:  # rows: programme, fen, paid, status
        total += r[1]
        lines.append("%s  %s  %s  %s" % (r[0], yuan(r[1]), r[2], r[3]))
    footer = "合计：%s" % yuan(total)
    if stale:
        footer += "（服务暂不可用，显示%s的记录）" % stale
    voice = "您共领取补贴%s" % yuan(total)
    if records:
        r = records[0]
        voice += "，最近一笔是%s，%s，%s发放" % (r[0], yuan(r[1]), r[2])
    return _PAGE_RESULT, "惠民资金查询结果", lines, footer, voice
