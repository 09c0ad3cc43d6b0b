"""Numbers and durations as the pages print them."""
from ui import format as fmt


def test_durations_leave_out_a_zero_smaller_unit():
    assert fmt.seconds(86_400) == "1 d"                  # "last 1 d 0 h" read oddly on the time picker
    assert fmt.seconds(7 * 86_400) == "7 d"
    assert fmt.seconds(86_400 + 3 * 3600) == "1 d 3 h"
    assert fmt.seconds(86_400 + 3 * 3600, short=True) == "1 d"
    assert fmt.seconds(3600) == "1 h" and fmt.seconds(3660) == "1 h 1 min"
    assert fmt.seconds(300) == "5 min" and fmt.seconds(0.25) == "250 ms"
