"""The one CPU budget (`--cores`): /metrics shows its size and use, and a server held to one core still
answers concurrent requests in full."""

import concurrent.futures
import re

import requests

from conftest import KEYS, Server, photo

ANALYZE = ("/computervision/imageanalysis:analyze?api-version=2023-10-01"
           "&features=caption,objects,read,smartCrops,tags")


def gauge(url, name):
    text = requests.get(url + "/metrics", timeout=10).text
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def test_a_server_held_to_one_core_shows_its_budget_and_serves_concurrent_requests():
    with Server("--cores", "1", "--workers", "2") as server:
        assert gauge(server.url, "vista_cpu_budget_cores") == 1
        headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
        call = lambda name: requests.post(server.url + ANALYZE, data=photo(name), headers=headers,  # noqa: E731
                                          timeout=120)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(call, ["astronaut.png", "coffee.png", "chelsea.png", "camera.png"]))
        assert [r.status_code for r in responses] == [200] * 4
        assert all(r.json()["captionResult"]["text"] for r in responses)
        assert gauge(server.url, "vista_cpu_budget_in_use") == 0, "every thread was given back"
