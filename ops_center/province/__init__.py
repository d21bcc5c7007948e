"""The province: its administrative units and agencies (`profile`, loaded from the JSON
profiles in `profiles/`) and its calendar (`calendar`: the time zone, days, months and
buckets as leaders count them). No I/O beyond reading the profile file."""
