"""Page sizes of this API's lists of the group and its people (group members, group search, exclusions, audit)."""

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
