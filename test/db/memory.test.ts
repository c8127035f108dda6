import { openMemoryDb } from '../../lib/db/memory.ts'
import { dbConformance } from './conformance.ts'

dbConformance('memory', async () => {
  const db = openMemoryDb()
  return { db, cleanup: () => db.close() }
})
