"""The course lessons: one lessonNN/ package per lesson (lesson12: PagedAttention and continuous batching)."""
