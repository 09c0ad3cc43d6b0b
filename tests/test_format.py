"""Numbers and durations as the pages print them."""
from ui import format as fmt


def test_durations_leave_out_a_zero_smaller_unit():
    assert fmt.seconds(86_400) == "1 d"                  # "last 1 d 0 h" read oddly on the time picker
    assert fmt.seconds(7 * 86_400) == "7 d"
    assert fmt.seconds(86_400 + 3 * 3600) == "1 d 3 h"
    assert fmt.seconds(86_400 + 3 * 3600, short=True) == "1 d"
    assert fmt.seconds(3600) == "1 h" and fmt.seconds(3660) == "1 h 1 min"
    assert fmt.seconds(300) == "5 min" and fmt.seconds(0.25) == "250 ms"


def test_whole_numbers_have_no_decimals():
    """An integer column's card read "min 0 · max 94.00", a replay "10.00 rows/s" and "3,600.0× real time"."""
    assert [fmt.num(v) for v in (0, 94.0, 1.0, 10, 3600.0, -2.0, 123456.0)] == \
        ["0", "94", "1", "10", "3,600", "-2", "123,456"]
    assert [fmt.num(v) for v in (27.15, 0.875, 1013.04, 0.0206, None, float("nan"))] == \
        ["27.15", "0.875", "1,013.0", "0.0206", "—", "—"]


def test_a_count_of_rows_agrees_with_its_number():
    """The quarantine panel read "Newest 1 rows set aside"."""
    assert fmt.rows(1) == "1 row" and fmt.rows(0) == "0 rows" and fmt.rows(2_500) == "2,500 rows"


def test_a_moment_of_another_day_carries_its_date():
    """The live score's "counted since" showed only the clock, so a deployment days ago read as today."""
    import time
    assert len(fmt.moment(time.time())) == 8                       # HH:MM:SS
    assert fmt.moment(time.time() - 3 * 86_400).count("-") == 2     # YYYY-MM-DD HH:MM:SS
