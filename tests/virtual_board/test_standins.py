"""The ESP32 stand-ins a virtual board injects: machine, network, ntptime, time, os.rename, faults."""

import datetime

WDT_MAIN_PY = """
import machine, time
print('cause', machine.reset_cause())
try:
    open('armed').close()
except OSError:
    open('armed', 'w').close()
    dog = machine.WDT(timeout=1000)
    for _ in range(4):
        dog.feed()
        time.sleep_ms(100)
    print('stopped feeding')
    while True:
        time.sleep_ms(50)
"""


def exec_on(board, code: str) -> str:
    return board.run_mpremote("exec", code).stdout.strip()


def test_unique_id_and_wlan_macs_come_from_the_mac_option(make_board):
    board = make_board(mac="24:0a:c4:12:34:56")
    answer = exec_on(board, (
        "import machine, network\n"
        "print(machine.unique_id().hex(), network.WLAN(network.STA_IF).config('mac').hex(),"
        " network.WLAN(network.AP_IF).config('mac').hex())"
    ))
    assert answer == "240ac4123456 240ac4123456 240ac4123457"


def test_default_mac_is_stable_for_a_folder_and_locally_administered(make_board, board_dir):
    first = make_board()
    mac = first.mac
    first.stop()
    again = make_board()
    assert again.mac == mac
    assert int(mac[:2], 16) & 0x03 == 0x02
    assert exec_on(again, "import machine; print(machine.unique_id().hex())") == mac.replace(":", "").lower()


def test_wlan_joins_at_once_and_reports_an_address(board):
    answer = exec_on(board, """
import network
w = network.WLAN(network.STA_IF)
try:
    w.connect('lab', 'secret')
except OSError as e:
    print('inactive:', e)
w.active(True)
w.connect('lab', 'secret')
print(w.isconnected(), w.status() == network.STAT_GOT_IP, w.ifconfig()[0], w.config('ssid'))
print(w is network.WLAN(network.STA_IF), w.scan())
""")
    assert answer.splitlines() == ["inactive: Wifi Not Started", "True True 127.0.0.1 lab", "True []"]


def test_wifi_fail_fault_fails_the_next_joins(make_board):
    board = make_board(faults={"wifi_fail": 2})
    code = """
import network
w = network.WLAN(network.STA_IF)
w.active(True)
for _ in range(3):
    w.connect('lab', 'secret')
    print(w.isconnected(), w.status())
"""
    assert exec_on(board, code).splitlines() == ["False 201", "False 201", "True 1010"]
    board.set_faults(wifi_fail="always")
    assert exec_on(board, code).splitlines() == ["False 201"] * 3
    board.set_faults()
    assert exec_on(board, code).splitlines() == ["True 1010"] * 3


def test_ntp_fault_raises_etimedout_then_settime_sets_the_clock(make_board):
    board = make_board(faults={"ntp_fail": 1, "clock_unset": True})
    answer = exec_on(board, """
import errno, ntptime, time
print(time.gmtime()[0], time.time() < 946684800 + 600, ntptime.host, ntptime.timeout)
ntptime.timeout = 0
try:
    ntptime.settime()
except OSError as e:
    print('ntp failed', e.errno == errno.ETIMEDOUT)
ntptime.settime()
print(time.gmtime()[0])
""")
    year = datetime.datetime.now(datetime.UTC).year
    assert answer.splitlines() == ["2000 True pool.ntp.org 1", "ntp failed True", str(year)]


def test_unset_clock_counts_from_2000_and_resets_with_power(make_board):
    board = make_board(faults={"clock_unset": True})
    code = "import time; print(time.gmtime()[:3], time.localtime()[:3], time.time() - 946684800 < 600)"
    assert exec_on(board, code) == "(2000, 1, 1) (2000, 1, 1) True"
    exec_on(board, "import machine; machine.RTC().datetime((2031, 2, 3, 0, 4, 5, 6, 0))")
    # kept over the soft reset that starts the next mpremote session
    assert exec_on(board, "import time; print(time.gmtime()[:5])") == "(2031, 2, 3, 4, 5)"
    board.power_off()
    board.power_on()
    assert exec_on(board, "import time; print(time.gmtime()[0])") == "2000"


def test_clock_defaults_to_true_time(board):
    year = datetime.datetime.now(datetime.UTC).year
    assert exec_on(board, "import time; print(time.gmtime()[0])") == str(year)


def test_mpremote_rtc_set_sets_the_board_clock(make_board):
    board = make_board(faults={"clock_unset": True})
    board.run_mpremote("rtc", "--set")
    shown = board.run_mpremote("rtc").stdout.strip()
    year, month, day = (int(part) for part in shown.strip("()").split(",")[:3])
    now = datetime.datetime.now()
    assert abs((datetime.date(year, month, day) - now.date()).days) <= 1
    assert exec_on(board, "import time; print(time.gmtime()[0])") == str(year)


def test_rtc_datetime_round_trips_and_mktime_is_utc(board):
    answer = exec_on(board, """
import machine, time
rtc = machine.RTC()
rtc.datetime((2030, 5, 6, 0, 7, 8, 9, 0))
print(rtc.datetime()[:7], time.mktime((2030, 5, 6, 7, 8, 9, 0, 0)))
""")
    expected = int(datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC).timestamp())
    assert answer == f"(2030, 5, 6, 0, 7, 8, 9) {expected}"


def test_unfed_watchdog_resets_the_board(make_board, board_dir):
    (board_dir / "main.py").write_text(WDT_MAIN_PY)
    board = make_board()
    board.wait_for_output("cause 1")
    board.wait_for_output(r"stopped feeding\n.*task_wdt: Task watchdog got triggered[\s\S]*cause 3")


def test_watchdog_keeps_running_over_a_soft_reset(board):
    board.run_mpremote("exec", "import machine; machine.WDT(timeout=1500)")
    board.run_mpremote("soft-reset")
    mark = board.output_mark()  # after the soft reboot: nothing feeds the watchdog any more
    board.wait_for_output("task_wdt: Task watchdog got triggered", since=mark)
    assert exec_on(board, "import machine; print(machine.reset_cause())") == "3"


def test_machine_keeps_the_unix_port_members(board):
    answer = exec_on(board, "import machine; print(callable(machine.idle), callable(machine.soft_reset))")
    assert answer == "True True"


def test_os_rename_replaces_atomically_on_the_board_folder(board):
    (board.directory / "iotc").mkdir()
    (board.directory / "iotc" / "active").write_text("id-old")
    exec_on(board, """
import os
with open('/iotc/active.tmp', 'w') as f:
    f.write('id-new')
os.rename('/iotc/active.tmp', '/iotc/active')
os.chdir('/iotc')
os.rename('active', 'current')
""")
    assert sorted(p.name for p in (board.directory / "iotc").iterdir()) == ["current"]
    assert (board.directory / "iotc" / "current").read_text() == "id-new"


def test_the_standins_mount_is_not_in_the_board_listing(board):
    (board.directory / "main.py").write_text("pass\n")
    assert exec_on(board, "import os; print(os.listdir('/'), list(os.ilistdir('/')))").startswith(
        "['main.py'] [('main.py', 32768, "
    )
    assert exec_on(board, "import os; print(list(os.ilistdir('/'))[0][3])") == "5"  # sizes, as LittleFS
