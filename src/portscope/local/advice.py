# ruff: noqa: E501  (Japanese text is two cells wide per character)
"""What each comparison class means and what to do about it, in English and Japanese.

Texts are keyed by the codes a :class:`~portscope.model.Comparison` carries (its classes,
``why`` codes, hints and notes), so a saved comparison renders in either language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portscope.errors import UsageError
from portscope.model import ComparedPort, Comparison, Exposure

LANGS = ("en", "ja")


@dataclass(frozen=True, slots=True)
class ClassText:
    label: str
    meaning: str
    advice: str


CLASSES: dict[str, dict[Exposure, ClassText]] = {
    "en": {
        Exposure.EXPOSED: ClassText(
            "exposed",
            "Listening on this host and reachable from the vantage point.",
            "Keep it only if this service must be offered to that network. Otherwise stop "
            "the service, bind it to loopback or an internal address, or allow only the "
            "source addresses that need it in the firewall. Patch what stays exposed first."),
        Exposure.SHIELDED: ClassText(
            "shielded",
            "Listening on this host, but filtered from the vantage point: the firewall "
            "works for this port.",
            "Fine as long as the firewall stays. If nobody outside the host needs the "
            "service, also bind it to loopback (defence in depth): one wrong firewall rule "
            "would expose it."),
        Exposure.LOCAL_ONLY: ClassText(
            "local-only",
            "Bound to loopback: only processes on this host can connect.",
            "Nothing to do for the network. Check that local users may be trusted with it "
            "(databases and caches without a password are reachable by any local user)."),
        Exposure.UNEXPECTED: ClassText(
            "unexpected",
            "Open from the vantage point, but no socket on this host listens there: a "
            "port forward (DNAT, a container's published port), another host behind the "
            "same address (NAT, load balancer), a middlebox answering for the host, or a "
            "socket this inventory cannot see (another network namespace, a rootkit).",
            "Find out what answers: check the NAT rules (iptables -t nat -S, nft list "
            "ruleset), container port mappings and the router's forwards; connect to the "
            "port and read its banner. If nothing should answer there, remove the forward "
            "and treat the host as suspicious until explained."),
        Exposure.CLOSED_BUT_LISTED: ClassText(
            "closed-but-listed",
            "Listed as listening here, but the scan got a definite 'closed' (TCP reset or "
            "ICMP port unreachable): a firewall REJECT rule that imitates a closed port, "
            "a socket that closed or restarted between the two views, or a listing that "
            "shows sockets no longer accepting (the seed's netstat case).",
            "Take both views again at the same moment. If it stays closed, look for a "
            "REJECT rule (that is shielded, but louder than DROP) or a stale listener, "
            "and stop services nobody uses."),
        Exposure.UNDETERMINED: ClassText(
            "undetermined",
            "Listening here; the scan could not decide between open and filtered (UDP "
            "without a reply, FIN/NULL/Xmas silence, or an ACK scan's 'unfiltered').",
            "Treat it as exposed until proven otherwise: probe the service itself (UDP "
            "with -sU and version detection, or a TCP connect scan) or read the firewall "
            "rules for this port."),
        Exposure.NOT_SCANNED: ClassText(
            "not-scanned",
            "Listening here, but the scan did not look: the port or protocol was outside "
            "its scope, or the socket is bound to an address or family that was not "
            "scanned.",
            "Scan again including these ports (-p-, -sU for UDP) and addresses (IPv6 as "
            "well as IPv4) to get a verdict: a port nobody scanned is not a closed port."),
    },
    "ja": {
        Exposure.EXPOSED: ClassText(
            "公開",
            "このホストで待ち受けており、スキャンした地点から到達できます。",
            "そのネットワークに提供する必要があるサービスだけを残してください。不要ならサービスを停止するか、"
            "ループバックや内部アドレスだけにバインドするか、ファイアウォールで必要な送信元アドレスだけを"
            "許可してください。公開を続けるサービスは最優先でパッチを当ててください。"),
        Exposure.SHIELDED: ClassText(
            "遮断",
            "このホストで待ち受けていますが、スキャンした地点からはフィルタされています(ファイアウォールが"
            "機能しています)。",
            "ファイアウォールが維持される限り問題ありません。ホストの外から使う必要がないなら、ループバックにも"
            "バインドしてください(多層防御)。ルールを一つ誤るだけで公開されてしまいます。"),
        Exposure.LOCAL_ONLY: ClassText(
            "ローカルのみ",
            "ループバックにバインドされており、このホスト上のプロセスだけが接続できます。",
            "ネットワークに対しての対処は不要です。ローカルユーザーを信頼できるか確認してください"
            "(パスワードのないデータベースやキャッシュは、どのローカルユーザーからも使えます)。"),
        Exposure.UNEXPECTED: ClassText(
            "想定外",
            "スキャンした地点からは開いていますが、このホストにはそこで待ち受けるソケットがありません。"
            "ポートフォワード(DNAT、コンテナの公開ポート)、同じアドレスの背後にある別のホスト(NAT、"
            "ロードバランサ)、ホストの代わりに応答する中継装置、またはこの一覧から見えないソケット"
            "(別のネットワーク名前空間、ルートキット)が考えられます。",
            "何が応答しているかを調べてください。NAT ルール(iptables -t nat -S、nft list ruleset)、"
            "コンテナのポート割り当て、ルーターの転送設定を確認し、ポートに接続してバナーを読んでください。"
            "応答するはずがないなら転送を削除し、原因が分かるまでホストを疑ってください。"),
        Exposure.CLOSED_BUT_LISTED: ClassText(
            "一覧のみ",
            "ここでは待ち受けとして一覧に出ていますが、スキャンでは明確に「closed」でした(TCP RST または "
            "ICMP ポート到達不能)。closed を装うファイアウォールの REJECT ルール、二つの観測の間に閉じたか"
            "再起動したソケット、または受け付けなくなったソケットまで表示する一覧(種記事の netstat の例)が"
            "考えられます。",
            "同じ時刻に両方をもう一度取得してください。closed のままなら REJECT ルール(遮断されていますが "
            "DROP より目立ちます)か古い待ち受けを探し、使われていないサービスは停止してください。"),
        Exposure.UNDETERMINED: ClassText(
            "判定不能",
            "ここで待ち受けていますが、スキャンでは open と filtered を区別できませんでした(応答のない "
            "UDP、FIN/NULL/Xmas スキャンの無応答、ACK スキャンの unfiltered)。",
            "反証されるまでは公開とみなしてください。サービス自体を調べる(UDP は -sU とバージョン検出、"
            "または TCP の connect スキャン)か、このポートのファイアウォールルールを確認してください。"),
        Exposure.NOT_SCANNED: ClassText(
            "未スキャン",
            "ここで待ち受けていますが、スキャンが調べていません。ポートやプロトコルが範囲外だったか、"
            "スキャンしていないアドレスやアドレスファミリにバインドされています。",
            "これらのポート(-p-、UDP は -sU)とアドレス(IPv4 だけでなく IPv6 も)を含めて再スキャンし"
            "てください。誰もスキャンしていないポートは閉じたポートではありません。"),
    },
}

WHY: dict[str, dict[str, str]] = {
    "en": {
        "open": "the scan found it open",
        "filtered": "the scan got no answer or a firewall's rejection (filtered)",
        "closed-filtered": "the scan could not tell closed from filtered",
        "closed": "the scan got 'closed' although a socket listens",
        "open-filtered": "no reply: open or filtered (usual for UDP and FIN/NULL/Xmas scans)",
        "unfiltered": "an ACK scan passed the firewall, but cannot tell open from closed",
        "no-listener": "open from outside, no local socket listens on this address",
        "loopback": "bound to loopback",
        "port-not-scanned": "this port was outside the scanned ports",
        "protocol-not-scanned": "this protocol was not scanned",
        "address-not-scanned": "bound to an address that was not scanned",
        "family-not-scanned": "bound to an address family that was not scanned",
        "link-local": "bound to a link-local address (reachable only on its link)",
        "host-down": "the host did not answer the scan at all",
    },
    "ja": {
        "open": "スキャンで open でした",
        "filtered": "スキャンに応答がないか、ファイアウォールが拒否しました(filtered)",
        "closed-filtered": "スキャンでは closed と filtered を区別できませんでした",
        "closed": "ソケットが待ち受けているのに、スキャンでは closed でした",
        "open-filtered": "応答なし: open または filtered(UDP や FIN/NULL/Xmas スキャンでは普通)",
        "unfiltered": "ACK スキャンはファイアウォールを通過しましたが、open か closed かは分かりません",
        "no-listener": "外からは open ですが、このアドレスで待ち受けるローカルソケットがありません",
        "loopback": "ループバックにバインド",
        "port-not-scanned": "このポートはスキャン範囲外でした",
        "protocol-not-scanned": "このプロトコルはスキャンされていません",
        "address-not-scanned": "スキャンされていないアドレスにバインド",
        "family-not-scanned": "スキャンされていないアドレスファミリにバインド",
        "link-local": "リンクローカルアドレスにバインド(そのリンクからのみ到達可能)",
        "host-down": "ホストがスキャンにまったく応答しませんでした",
    },
}

HINTS: dict[str, dict[str, str]] = {
    "en": {
        "translated": "the scanned address is not one of this host's (NAT): matched by port",
        "rejected": "a firewall answered with a rejection",
        "loopback-listener": "a loopback-only socket listens on this port: probably "
                             "forwarded to it (DNAT with route_localnet, or a proxy)",
        "other-address-listener": "a socket listens on this port at another address: "
                                  "probably forwarded to it",
        "v6only-listener": "an IPv6-only socket listens on this port",
    },
    "ja": {
        "translated": "スキャンしたアドレスはこのホストのものではありません(NAT): ポート番号で照合",
        "rejected": "ファイアウォールが拒否を返しました",
        "loopback-listener": "このポートでループバック専用のソケットが待ち受けています: そこへ転送されて"
                             "いる可能性があります(route_localnet を使った DNAT、またはプロキシ)",
        "other-address-listener": "このポートで別のアドレスのソケットが待ち受けています: そこへ転送されて"
                                  "いる可能性があります",
        "v6only-listener": "このポートで IPv6 専用のソケットが待ち受けています",
    },
}

NOTES: dict[str, dict[str, str]] = {
    "en": {
        "translated": "Scanned address(es) {translated} are not addresses of this host: "
                      "there is address translation between the scanner and the host, so "
                      "sockets bound to specific addresses were matched by port only.",
        "host-down": "The host did not answer the scan at {down}: nothing could be compared "
                     "there (scan again with -Pn).",
        "middlebox": "Very many ports answer at {middlebox} without a listener: a SYN proxy, "
                     "a tarpit or a firewall answering for the host; open ports there prove "
                     "little.",
        "process-detail-partial": "Process details are partial: the inventory was not "
                                  "taken as root.",
        "scan-incomplete": "The scan was interrupted: ports it did not reach count as "
                           "not scanned.",
        "time-gap": "The inventory and the scan are {hours} hour(s) apart: they may not "
                    "show the same moment.",
        "no-risk-source": "No risk levels: the audit knowledge base is not available in "
                          "this installation.",
    },
    "ja": {
        "translated": "スキャンしたアドレス {translated} はこのホストのアドレスではありません。スキャナと"
                      "ホストの間でアドレス変換が行われているため、特定アドレスにバインドしたソケットは"
                      "ポート番号だけで照合しました。",
        "host-down": "{down} でホストがスキャンに応答しなかったため、比較できませんでした(-Pn で"
                     "再スキャンしてください)。",
        "middlebox": "{middlebox} では待ち受けのない多数のポートが応答しています。SYN プロキシ、"
                     "ターピット、またはホストの代わりに応答するファイアウォールがあり、そこでの open は"
                     "ほとんど意味を持ちません。",
        "process-detail-partial": "プロセス情報は一部のみです(一覧は root で取得されていません)。",
        "scan-incomplete": "スキャンは中断されました。到達しなかったポートは未スキャンとして扱います。",
        "time-gap": "一覧とスキャンの時刻が {hours} 時間離れています。同じ時点の状態ではない可能性が"
                    "あります。",
        "no-risk-source": "危険度なし: このインストールでは監査の知識ベースを利用できません。",
    },
}


def _lang(lang: str) -> str:
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r} (choose from: {', '.join(LANGS)})")
    return lang


def class_text(exposure: Exposure, lang: str = "en") -> ClassText:
    return CLASSES[_lang(lang)][exposure]


def why_text(entry: ComparedPort, lang: str = "en") -> str:
    table = WHY[_lang(lang)]
    return table.get(entry.why, entry.why)


def hint_texts(entry: ComparedPort, lang: str = "en") -> list[str]:
    table = HINTS[_lang(lang)]
    return [table.get(h, h) for h in entry.hints]


def note_texts(comparison: Comparison, lang: str | None = None) -> list[str]:
    table = NOTES[_lang(lang or comparison.lang)]
    args: Mapping[str, str] = comparison.note_args
    out = []
    for code in comparison.notes:
        template = table.get(code, code)
        try:
            out.append(template.format(**args))
        except (KeyError, IndexError, ValueError):
            out.append(template)
    return out
