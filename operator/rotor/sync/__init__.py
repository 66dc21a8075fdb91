"""The pure logic of a sync: spec + fetched values + now -> desired Secret, then a plan."""
