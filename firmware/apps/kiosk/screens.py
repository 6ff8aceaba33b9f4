# What the kiosk shows and says, as pure functions of what happened: the only
# place where screen wording lives. Large Chinese text; names and numbers
# arrive here masked already (the clear ones never leave the lookup).
#
# Display VP addresses (hardware/boards/*kiosk*.json document the DGUS
# project): title, line1..line8, footer.
TITLE = 0x1000
LINES = (0x1100, 0x1200, 0x1300, 0x1400, 0x1500, 0x1600, 0x1700, 0x1800)
FOOTER = 0x1900

PAGE_IDLE = 0
PAGE_RESULT = 1
PAGE_MESSAGE = 2

# Reasons -> (screen text, spoken text)
MESSAGES = {
    "reading": ("正在读卡，请稍候", "正在读卡"),
    "unreadable": ("读卡失败，请重新放卡", "读卡失败，请重新放卡"),
    "pulled": ("卡片已移开，请重新放卡", "请重新放卡"),
    "invalid": ("身份证号码校验失败，请到窗口办理", "身份证无法识别，请到窗口办理"),
    "expired": ("身份证已过期，请到窗口办理", "身份证已过期"),
    "card_type": ("暂不支持此类证件", "暂不支持此类证件"),
    "unknown": ("未查询到您的补贴发放记录", "未查询到发放记录"),
    "unavailable": ("服务暂不可用，请稍后再试", "服务暂不可用，请稍后再试"),
    "module": ("读卡器故障，请联系工作人员", "读卡器故障，请联系工作人员"),
}


def yuan(fen):
    return "%d.%02d元" % (fen // 100, fen % 100)


def idle(nearby):
    """Idle screen: nearby bike availability lines, e.g. [("昌硕广场", 5, 7)]."""
    lines = ["%s  可借%d  可还%d" % (n, b, d) for n, b, d in nearby[:len(LINES)]]
    return PAGE_IDLE, "请将身份证放在读卡区", lines, "", None


def message(reason):
    text, voice = MESSAGES.get(reason, MESSAGES["unreadable"])
    return PAGE_MESSAGE, text, [], "", voice


def result(masked_name, masked_id, records, stale_date):
    """The payments: programme, amount, date, status; total and latest spoken."""
    lines = ["%s  %s  %s" % (masked_name, masked_id, "")]
    total = 0
    for r in records[:len(LINES) - 1]:
        total += r["amount_fen"]
        lines.append("%s  %s  %s  %s" % (r["programme"], yuan(r["amount_fen"]), r["paid"],
                                         r["status"]))
    footer = "合计 %s" % yuan(total)
    if stale_date:
        footer += "（服务暂不可用，显示%s的记录）" % stale_date
    voice = "您共领取补贴%s" % yuan(total)
    if records:
        r = records[0]
        voice += "，最近一笔是%s，%s，%s发放" % (r["programme"], yuan(r["amount_fen"]), r["paid"])
    return PAGE_RESULT, "惠民资金查询结果", lines, footer, voice
